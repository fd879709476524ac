/**
 * A new own device approved while a user new to the addressee unit is also waiting to be added: both end up in the
 * link conversation and both get the unit's cable key (the approval's forward to the phone, the late member's forward
 * to lkral), neither instead of the other. (Here the approval's catch-up adds lkral and sends his forward before the
 * approval builds its own list of owed forwards.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ReceivedItem } from "@valise/client";
import { settled, world } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA },
];

const cables = (items: ReceivedItem[]) => items.filter((i) => i.type === "cable").map((i) => i.text);

test(
  "approving a new own device keeps the forward owed to a user the same reconcile added",
  { timeout: 180_000 },
  async () => {
    const w = await world("sqlite", people, { transparency: true });
    try {
      const desk = await w.enroll("jnovak", "desk");
      const post = await w.enroll("pdvorak", "desk");
      await settled(w);
      await desk.cables.send({
        action: ["EMB/BEIJING"],
        precedence: "ROUTINE",
        label: ASIA,
        subject: "before",
        body: "text",
      });
      assert.deepEqual(cables(await post.sync()), ["before"]);

      // While nobody writes to the link conversation, a new user joins EMB/BEIJING and jnovak enrols a phone.
      await w.server.store.directory.addUser({
        handle: "lkral",
        units: ["EMB/BEIJING"],
        clearance: ASIA,
        role: "user",
      });
      const late = await w.enroll("lkral", "desk");
      const phone = await w.enroll("jnovak", "phone");
      await settled(w);

      // The approval reconciles the link conversation: the phone and lkral's device come in together.
      const r = await desk.approveDevice(phone.deviceId);
      assert.equal(r.conversations, 1);
      await desk.sync(); // sends what is owed
      assert.deepEqual(cables(await late.sync()), ["before"], "lkral (a late member) got the unit's cable key");
      assert.deepEqual(cables(await phone.sync()), ["before"], "the approved phone got it");
    } finally {
      await w.close();
    }
  },
);
