/**
 * MITRE ATT&CK (Enterprise) techniques for the detection rules in `packages/detect/rules/*.json` and the engine's
 * built-in baselines (`baseline.volume-*`). A rule maps to the techniques its alert is evidence of; reads add the
 * collection technique that fits what was read (cables and messages: Email Collection, documents: Data from
 * Information Repositories). A rule not listed here (an extra rule file) maps to Valid Accounts: every alert is
 * about a user's credentials doing something unusual.
 */

export interface Technique {
  id: string;
  name: string;
  /** ATT&CK tactics (kill chain phase names in the `mitre-attack` kill chain). */
  tactics: string[];
  description: string;
}

export const TECHNIQUES: Record<string, Technique> = {
  T1078: {
    id: "T1078",
    name: "Valid Accounts",
    tactics: ["defense-evasion", "persistence", "privilege-escalation", "initial-access"],
    description: "Adversaries obtain and abuse credentials of existing accounts.",
  },
  T1098: {
    id: "T1098",
    name: "Account Manipulation",
    tactics: ["persistence", "privilege-escalation"],
    description: "Adversaries manipulate accounts (add devices or credentials, widen access) to keep access.",
  },
  T1114: {
    id: "T1114",
    name: "Email Collection",
    tactics: ["collection"],
    description: "Adversaries collect messages (here: diplomatic cables and conversations) to gather information.",
  },
  T1213: {
    id: "T1213",
    name: "Data from Information Repositories",
    tactics: ["collection"],
    description: "Adversaries collect documents from shared information repositories.",
  },
  T1119: {
    id: "T1119",
    name: "Automated Collection",
    tactics: ["collection"],
    description: "Adversaries collect data in volume or in an automated way once inside.",
  },
  T1530: {
    id: "T1530",
    name: "Data from Cloud Storage",
    tactics: ["collection"],
    description: "Adversaries access data held in a storage service.",
  },
  T1550: {
    id: "T1550",
    name: "Use Alternate Authentication Material",
    tactics: ["defense-evasion", "lateral-movement"],
    description: "Adversaries use stolen session tokens or keys instead of logging in.",
  },
  T1083: {
    id: "T1083",
    name: "File and Directory Discovery",
    tactics: ["discovery"],
    description: "Adversaries enumerate items to find what they can reach.",
  },
  T1654: {
    id: "T1654",
    name: "Log Enumeration",
    tactics: ["discovery"],
    description: "Adversaries read logs to learn about the environment and what is monitored.",
  },
};

/** Rule id → technique ids (before the read-dependent collection techniques). */
export const RULE_TECHNIQUES: Record<string, string[]> = {
  // access.json
  "new-device-new-network-read": ["T1078"],
  "device-two-networks": ["T1078", "T1550"],
  "new-compartment-collection": ["T1078", "T1119"],
  "unusual-hour-reads": ["T1078", "T1119"],
  "denied-burst": ["T1083"],
  "denied-repeated": ["T1083"],
  "audit-read-denied": ["T1654"],
  // canary.json
  "canary-touch": ["T1213", "T1083"],
  // directory.json
  "directory-change-unusual": ["T1098"],
  "directory-burst": ["T1098"],
  // risk.json
  "signal.device-added-read": ["T1098", "T1078"],
  "signal.new-device": ["T1078"],
  "signal.new-network": ["T1078"],
  "signal.org-new-network": ["T1078"],
  "signal.new-compartment": ["T1078"],
  "signal.outside-units": ["T1078"],
  "signal.unusual-hour": ["T1078"],
  "signal.denied": ["T1083"],
  "signal.directory-new-target": ["T1098"],
  "signal.new-action": ["T1078"],
  "risk-accumulation": ["T1078"],
  // engine baselines
  "baseline.volume-hour": ["T1119"],
  "baseline.volume-day": ["T1119"],
  "baseline.volume-week": ["T1119"],
};

/** Plain titles of the known rules (alert reasons name users and items, so the bundle uses these instead). */
export const RULE_TITLES: Record<string, string> = {
  "new-device-new-network-read": "Reads from a new device over a new network",
  "device-two-networks": "One device used from two networks at once, one of them unknown to the organisation",
  "new-compartment-collection": "Collection in compartments new to the user and to their unit",
  "unusual-hour-reads": "Many reads at an hour unusual for the user",
  "denied-burst": "Burst of refused requests (probing)",
  "denied-repeated": "Repeated refusals for different items within hours (slow probing)",
  "audit-read-denied": "Audit log read without the officer role",
  "canary-touch": "Canary document touched",
  "directory-change-unusual": "Directory change by an administrator at an unusual hour or from a new device or network",
  "directory-burst": "Burst of directory changes",
  "signal.device-added-read": "Reads from a device added to the user shortly before",
  "signal.new-device": "Device not yet trusted",
  "signal.new-network": "Network not yet used by the user",
  "signal.org-new-network": "Network nobody in the organisation uses",
  "signal.new-compartment": "Read in a compartment new to the user",
  "signal.outside-units": "Reads in units new to the user, outside their own",
  "signal.unusual-hour": "Activity at an unusual hour",
  "signal.denied": "Refused request",
  "signal.directory-new-target": "Directory change in a unit the administrator never changed before",
  "signal.new-action": "An action the user never did before",
  "risk-accumulation": "Several weak signals for one user within a day",
  "baseline.volume-hour": "Read volume far above the user's and unit's usual hour",
  "baseline.volume-day": "Read volume far above the user's and unit's usual day",
  "baseline.volume-week": "Read volume far above the user's and unit's usual week",
};

const READ_TECHNIQUE: Record<string, string> = {
  "cable.read": "T1114",
  "cable.list": "T1114",
  "message.read": "T1114",
  "document.read": "T1213",
  "document.list": "T1213",
};

/** The techniques an alert is evidence of: its rule's, plus the collection technique of each successful read. */
export function techniquesFor(rule: string, actions: readonly { action: string; outcome: string }[]): string[] {
  const out = new Set(RULE_TECHNIQUES[rule] ?? ["T1078"]);
  for (const a of actions) {
    const t = a.outcome === "ok" ? READ_TECHNIQUE[a.action] : undefined;
    if (t) out.add(t);
  }
  return [...out].sort();
}
