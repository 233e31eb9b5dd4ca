// Validates payloads against the JSON Schemas in schemas/ (protocol.md: tests
// validate against them). check(name, payload) returns null or the errors.
import Ajv from "ajv";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../schemas");
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map();
for (const f of readdirSync(dir).filter((f) => f.endsWith(".json")))
  validators.set(f.slice(0, -5), ajv.compile(JSON.parse(readFileSync(path.join(dir, f), "utf8"))));

// The notes between workers (schemas/notes/<kind>.json), by kind.
const noteValidators = new Map();
for (const f of readdirSync(path.join(dir, "notes")).filter((f) => f.endsWith(".json")))
  noteValidators.set(f.slice(0, -5), ajv.compile(JSON.parse(readFileSync(path.join(dir, "notes", f), "utf8"))));
export function checkNote(note) {
  const v = noteValidators.get(note.t);
  if (!v) return `no schema for note ${JSON.stringify(note)}`;
  return v(note) ? null : `note ${note.t}: ${ajv.errorsText(v.errors)} in ${JSON.stringify(note)}`;
}

export function check(name, payload) {
  const v = validators.get(name);
  if (!v) throw new Error(`no schema ${name}`);
  return v(payload) ? null : `${name}: ${ajv.errorsText(v.errors)} in ${JSON.stringify(payload)}`;
}

// The schema of each server event, by event name.
export const eventSchema = {
  "session": "session", "user-session": "user-session", "user-left": "user-left", "peer-status": "peer-status",
  "match:proposal": "match-proposal", "match:waiting": "match-waiting", "match:expired": "match-expired",
  "match:withdrawn": "match-withdrawn", "chat:message": "chat-message", "chat:delivered": "chat-delivered",
  "chat:read": "chat-read", "chat:typing": "chat-typing",
};
export const ackSchema = (event) => (event === "match:request" ? "match-request-ack" : "match-ok-ack");
