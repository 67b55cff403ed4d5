#!/usr/bin/env node
// Runs ONNX models with ONNX Runtime (onnxruntime-node, CPU execution provider) on float32
// .npy inputs and writes each model's first output as a float32 .npy file.
//
//   node tools/ort/run.js [--opt LEVEL] [--threads N] MODEL.onnx IN.npy OUT.npy [MODEL.onnx IN.npy OUT.npy ...]
//
// Several model/input/output triples can be given to one process, so that callers pay
// Node's and ONNX Runtime's start-up once; a session is created once per distinct model
// file (and reused for every triple naming it). The input feeds the model's first input,
// whatever its name. LEVEL is ONNX Runtime's graph optimisation level: disabled, basic,
// extended or all (the default, what a server gets). N is the number of intra-op threads
// per session (default: ONNX Runtime's, one per core).
//
// A triple that fails (its message on stderr names the model and input) writes no output
// file; the others still run. Exit status: 0 when every triple ran, 1 when any failed,
// 2 on a usage error. See README.md for installing onnxruntime-node.
'use strict';

const fs = require('fs');
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write('run.js: ' + msg + '\n');
  process.stderr.write('usage: node run.js [--opt disabled|basic|extended|all] [--threads N] MODEL.onnx IN.npy OUT.npy [MODEL IN OUT ...]\n');
  process.exit(2);
}

function loadOrt() {
  try {
    return require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    process.stderr.write('run.js: cannot load onnxruntime-node from ' + path.join(__dirname, 'node_modules') +
      ' (' + String(e.message || e).split('\n')[0] + ')\n' +
      'install it with: npm ci --prefix tools/ort --ignore-scripts\n');
    process.exit(1);
  }
}

// readNpy reads a NumPy .npy file (format 1.0, 2.0 or 3.0) holding a little-endian float32
// array in C order.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(file + ': not a .npy file');
  }
  const major = buf[6];
  let hlen;
  let hstart;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    hlen = buf.readUInt32LE(8);
    hstart = 12;
  } else {
    throw new Error(file + ': unsupported .npy version ' + major);
  }
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = header.match(/'descr'\s*:\s*'([^']*)'/);
  if (!descr || (descr[1] !== '<f4' && descr[1] !== '=f4')) {
    throw new Error(file + ': element type ' + (descr ? descr[1] : '?') + ', want <f4 (float32)');
  }
  if (/'fortran_order'\s*:\s*True/.test(header)) throw new Error(file + ': Fortran order is not supported');
  const sm = header.match(/'shape'\s*:\s*\(([^)]*)\)/);
  if (!sm) throw new Error(file + ': no shape in header ' + JSON.stringify(header));
  const shape = sm[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isInteger(n) || n < 0) throw new Error(file + ': bad shape ' + sm[1]);
    return n;
  });
  const n = shape.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  if (buf.length < off + 4 * n) throw new Error(file + ': truncated (' + n + ' values in the header)');
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(off + 4 * i);
  return { shape, data };
}

// writeNpy writes a float32 array as a NumPy format 1.0 .npy file, header padded to 64 bytes
// as NumPy writes it.
function writeNpy(file, shape, data) {
  const shapeStr = shape.length === 1 ? '(' + shape[0] + ',)' : '(' + shape.join(', ') + ')';
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shapeStr + ', }';
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = Buffer.alloc(10 + header.length + 4 * data.length);
  out[0] = 0x93;
  out.write('NUMPY', 1, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  const off = 10 + header.length;
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], off + 4 * i);
  // Write then rename, so that a reader never sees a partial file.
  const tmp = file + '.tmp' + process.pid;
  fs.writeFileSync(tmp, out);
  fs.renameSync(tmp, file);
}

async function main() {
  const args = process.argv.slice(2);
  let opt = 'all';
  let threads = 0; // ONNX Runtime's default: one intra-op thread per core
  while (args.length && args[0].startsWith('--')) {
    const flag = args.shift();
    if (flag === '--opt') {
      opt = args.shift();
      if (!['disabled', 'basic', 'extended', 'all'].includes(opt)) usage('bad --opt ' + opt);
    } else if (flag === '--threads') {
      threads = Number(args.shift());
      if (!Number.isInteger(threads) || threads < 0) usage('bad --threads');
    } else if (flag === '--help' || flag === '-h') {
      usage();
    } else {
      usage('unknown flag ' + flag);
    }
  }
  if (args.length === 0 || args.length % 3 !== 0) usage('want MODEL IN OUT triples, got ' + args.length + ' arguments');
  const ort = loadOrt();
  const sessions = new Map(); // model path -> Promise of a session
  let failed = 0;
  for (let i = 0; i < args.length; i += 3) {
    const [model, input, output] = args.slice(i, i + 3);
    try {
      if (!sessions.has(model)) {
        const options = { graphOptimizationLevel: opt, executionProviders: ['cpu'] };
        if (threads > 0) options.intraOpNumThreads = threads;
        sessions.set(model, ort.InferenceSession.create(model, options));
      }
      const sess = await sessions.get(model);
      const x = readNpy(input);
      const feeds = {};
      feeds[sess.inputNames[0]] = new ort.Tensor('float32', x.data, x.shape);
      const res = await sess.run(feeds, [sess.outputNames[0]]);
      const y = res[sess.outputNames[0]];
      if (y.type !== 'float32' && y.type !== 'float64') {
        throw new Error('output ' + sess.outputNames[0] + ' has type ' + y.type + ', want float32');
      }
      writeNpy(output, Array.from(y.dims, Number), y.type === 'float32' ? y.data : Float32Array.from(y.data));
    } catch (e) {
      // Go on with the other triples: the caller sees which outputs are missing.
      process.stderr.write('run.js: ' + model + ' on ' + input + ': ' + String(e.message || e).split('\n')[0] + '\n');
      failed++;
    }
  }
  if (failed) process.exit(1);
}

main().catch((e) => {
  process.stderr.write('run.js: ' + String((e && e.stack) || e) + '\n');
  process.exit(1);
});
