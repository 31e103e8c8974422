#!/usr/bin/env node
// Stable bin entry (committed, executable): npm links bins at install time, before any build.
import '../dist/bin/herald-bench.js';
