#!/usr/bin/env node
// Stable bin entry (committed, executable) so npm links it before the first build.
import '../dist/bin/herald-token.js';
