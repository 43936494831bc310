#!/usr/bin/env node
import { Command } from 'commander';
import { serve } from './serve.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = new Command('fleet').description('Keep a fleet of cameras connected, known and up to date.');

program
  .command('serve')
  .description('run one backend replica (configuration from environment variables, see docs/configuration.md)')
  .action(serve);

await program.parseAsync();
