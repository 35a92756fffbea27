#!/usr/bin/env node
// The installed command: the compiled process entry (npm ci / npm run build make dist/).
import '../dist/main.js';
