/**
 * A long-running device (the web app, a CLI `--follow`) approves a new device of its user seconds after it was
 * enrolled: the approval must not answer from a directory view cached before the enrolment ("… is not a device of
 * pdvorak in the directory", seen in the web e2e test). It asks the witnessed log again, and waits for the
 * checkpoint that holds the new device. A device that is not the user's is still refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ValiseError } from "@valise/core";
import { world } from "./helpers.js";

for (const kind of ["sqlite"] as const) {
  test(`${kind}: approving a device enrolled since the directory was last read works at once`, async () => {
    const w = await world(kind, [{ handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA" }], {
      transparency: true,
    });
    try {
      const laptop = await w.enroll("pdvorak", "laptop");
      // The laptop reads (and caches) its user's directory record: an unknown id is refused, naming the user.
      await assert.rejects(
        laptop.approveDevice("d-aaaaaaaaaaaaaaaaaaaaaaaaaa"),
        (e: unknown) => e instanceof ValiseError && e.code === "not_found" && /not a device of pdvorak/.test(e.message),
      );
      const phone = await w.enroll("pdvorak", "phone");
      const r = await laptop.approveDevice(phone.deviceId);
      assert.equal(typeof r.keys, "number");
      // Still refused for an id the log does not hold for pdvorak, even after asking again.
      await assert.rejects(
        laptop.approveDevice("d-bbbbbbbbbbbbbbbbbbbbbbbbbb"),
        (e: unknown) => e instanceof ValiseError && e.code === "not_found",
      );
      await assert.rejects(
        laptop.approveDevice(laptop.deviceId),
        (e: unknown) => e instanceof ValiseError && e.code === "bad_request",
      );
    } finally {
      await w.close();
    }
  });
}
