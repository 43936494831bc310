import { OPERATOR_ROLES, type OperatorRole } from '../security/operator-tokens.ts';
import { OperatorStore } from '../storage/operator-store.ts';
import { table } from './format.ts';
import { CliError, EXIT, openStorage } from './storage-access.ts';

/** `fleet operator create NAME --role ROLE`: prints a new operator token once; only its hash is stored. */
export async function createOperator(name: string, options: { role: string; json?: boolean }): Promise<void> {
  if (!OPERATOR_ROLES.includes(options.role as OperatorRole)) {
    throw new CliError(`invalid --role ${options.role}: expected one of ${OPERATOR_ROLES.join(', ')}`, EXIT.usage);
  }
  const storage = await openStorage();
  try {
    const operators = new OperatorStore(storage.state.redis, storage.state.keys);
    const token = await operators.create(name, options.role as OperatorRole);
    process.stdout.write(options.json ? `${JSON.stringify({ name, role: options.role, token })}\n` : `${token}\n`);
  } finally {
    await storage.close();
  }
}

export async function listOperators(options: { json?: boolean }): Promise<void> {
  const storage = await openStorage();
  try {
    const records = await new OperatorStore(storage.state.redis, storage.state.keys).list();
    if (options.json) process.stdout.write(`${JSON.stringify(records)}\n`);
    else {
      const rows = records.map((r) => [r.name, r.role, new Date(r.createdAt).toISOString()]);
      process.stdout.write(`${table(['NAME', 'ROLE', 'CREATED'], rows)}\n`);
    }
  } finally {
    await storage.close();
  }
}

export async function revokeOperator(name: string): Promise<void> {
  const storage = await openStorage();
  try {
    const count = await new OperatorStore(storage.state.redis, storage.state.keys).revoke(name);
    if (count === 0) throw new CliError(`not_found: no operator token named ${name}`, EXIT.failure);
    process.stdout.write(`revoked ${count} token(s) of ${name}\n`);
  } finally {
    await storage.close();
  }
}
