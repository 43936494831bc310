import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * Loads the Lua scripts in storage/scripts/ as ioredis commands. ioredis sends EVALSHA and falls back to EVAL
 * when Redis lost its script cache (a restart or SCRIPT FLUSH), so scripts heal by themselves.
 * Every script gets the prelude with the key builders and shared helpers, then the rollout rules
 * (rollout.lua), and takes the key prefix as ARGV[1]. Scripts named in LIBRARIES get those files too, between
 * the rollout rules and their own text.
 */
const SCRIPT_NAMES = [
  'register_device',
  'claim_offer',
  'claim_offers',
  'report_state',
  'waive_attempt',
  'expire_in_flight',
  'renew_presences',
  'extend_deadlines',
  'release_presence',
  'add_patch',
  'mark_patch_missing',
  'provision_device',
  'create_rollout',
  'set_rollout_state',
  'mark_patch_removed',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** Lua files that some scripts share, beyond the prelude and the rollout rules. */
const LIBRARIES: Partial<Record<ScriptName, string[]>> = {
  claim_offer: ['claim.lua'],
  claim_offers: ['claim.lua'],
};
export type ScriptReply = string | number | null | ScriptReply[];
export type ScriptRunner = (redis: Redis, name: ScriptName, args: (string | number)[]) => Promise<ScriptReply>;

const scriptDir = new URL('./scripts/', import.meta.url);
const prelude = readFileSync(new URL('prelude.lua', scriptDir), 'utf8');
const rolloutRules = readFileSync(new URL('rollout.lua', scriptDir), 'utf8');

export function scriptSource(name: ScriptName): string {
  const files = [...(LIBRARIES[name] ?? []), `${name}.lua`];
  const parts = files.map((file) => readFileSync(new URL(file, scriptDir), 'utf8'));
  return [prelude, rolloutRules, ...parts].join('\n');
}

export function defineScripts(redis: Redis): void {
  for (const name of SCRIPT_NAMES) {
    redis.defineCommand(name, { numberOfKeys: 0, lua: scriptSource(name) });
  }
}

/** Called after every script run with its duration in seconds; the runtime feeds it into its metrics. */
export type ScriptObserver = (name: ScriptName, seconds: number, ok: boolean) => void;
const observers = new WeakMap<Redis, ScriptObserver>();

export function observeScripts(redis: Redis, observer: ScriptObserver): void {
  observers.set(redis, observer);
}

export async function runScript(redis: Redis, name: ScriptName, args: (string | number)[]): Promise<ScriptReply> {
  const command = (redis as unknown as Record<string, (...a: (string | number)[]) => Promise<ScriptReply>>)[name];
  if (!command) throw new Error(`Lua script ${name} is not defined on this connection`);
  const observer = observers.get(redis);
  if (!observer) return command.call(redis, ...args);
  const started = performance.now();
  try {
    const reply = await command.call(redis, ...args);
    observer(name, (performance.now() - started) / 1000, true);
    return reply;
  } catch (err) {
    observer(name, (performance.now() - started) / 1000, false);
    throw err;
  }
}
