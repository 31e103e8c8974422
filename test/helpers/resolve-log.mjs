// Preload for a child process (`node --import <this file>`): registers resolve-log-hook.mjs.
import { register } from 'node:module';

register('./resolve-log-hook.mjs', import.meta.url);
