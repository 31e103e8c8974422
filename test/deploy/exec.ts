import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Repository root: the compose project directory. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Full output of every command the deploy suite runs (builds are long; the errors show a tail). */
export const LOG_DIR = `${ROOT}test-artifacts/deploy`;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Log file under LOG_DIR that receives the command line and its output. */
  log?: string;
  /** Resolve with the exit code instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
}

/** Runs a command to completion; rejects with the tail of its output when it fails. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const logFile = options.log ? `${LOG_DIR}/${options.log}` : undefined;
  if (logFile) {
    mkdirSync(LOG_DIR, { recursive: true });
    appendFileSync(logFile, `\n$ ${command} ${args.join(' ')}\n`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const keep = (chunk: Buffer, into: 'out' | 'err') => {
      const text = chunk.toString();
      if (into === 'out') stdout += text;
      else stderr += text;
      if (logFile) appendFileSync(logFile, text);
    };
    child.stdout.on('data', (c: Buffer) => keep(c, 'out'));
    child.stderr.on('data', (c: Buffer) => keep(c, 'err'));
    const timer = options.timeoutMs
      ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
      : undefined;
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? -1, stdout, stderr };
      if (code === 0 || options.allowFail) return resolve(result);
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-25).join('\n');
      reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal})${logFile ? `, full log ${logFile}` : ''}:\n${tail}`));
    });
  });
}

/** Runs a shell pipeline (`tar … | docker import …`) with the same reporting as `run`. */
export function runShell(script: string, options: RunOptions = {}): Promise<RunResult> {
  return run('sh', ['-c', `set -e; ${script}`], options);
}

/** Whether `command` is on PATH. */
export async function have(command: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${command}`], { allowFail: true })).code === 0;
}
