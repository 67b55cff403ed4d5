// Runs every testdata/parity/*/model.onnx in ONNX Runtime (onnxruntime-node) on its input.npy
// and compares with PyTorch's output.npy. Not part of the build; onnxruntime-node is installed
// outside the repository (or in tools/ort, as .ci/run does: npm ci --prefix tools/ort --ignore-scripts):
//
//   npm install --prefix /tmp/ort onnxruntime-node --ignore-scripts
//   ORT_DIR=/tmp/ort node tools/check_parity_ort.js [testdata/parity]
//   ORT_DIR=/tmp/ort node tools/check_parity_ort.js --model M.onnx --input in.npy --output want.npy
//
// Exits non-zero if any fixture differs by more than 1e-4 (absolute + relative).
'use strict';
const fs = require('fs');
const path = require('path');
// ORT_DIR, else tools/ort (where .ci/run installs it with npm ci), else /tmp/ort.
const ortDir = process.env.ORT_DIR ||
  (fs.existsSync(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node')) ? path.join(__dirname, 'ort') : '/tmp/ort');
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not .npy');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(file + ': not <f4: ' + header);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(file + ': fortran order');
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const off = hstart + hlen;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(off + 4 * i);
  return { shape, data };
}

async function one(model, input, output) {
  const x = readNpy(input);
  const want = readNpy(output);
  const t0 = Date.now();
  const sess = await ort.InferenceSession.create(model);
  const t1 = Date.now();
  const res = await sess.run({ input: new ort.Tensor('float32', x.data, x.shape) });
  const t2 = Date.now();
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < want.data.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(res.output.data[i] - want.data[i]));
    maxRef = Math.max(maxRef, Math.abs(want.data[i]));
  }
  console.log(path.basename(model), 'shape', res.output.dims.join('x'), 'max|diff|', maxAbs.toExponential(2),
    'max|want|', maxRef.toExponential(2), 'load', (t1 - t0) + 'ms', 'run', (t2 - t1) + 'ms');
  process.exit(maxAbs > 1e-4 * Math.max(1, maxRef) ? 1 : 0);
}

async function main() {
  const a = process.argv;
  if (a[2] === '--model') return one(a[3], a[a.indexOf('--input') + 1], a[a.indexOf('--output') + 1]);
  const root = process.argv[2] || 'testdata/parity';
  let failed = 0;
  for (const dir of fs.readdirSync(root).sort()) {
    const model = path.join(root, dir, 'model.onnx');
    if (!fs.existsSync(model)) continue;
    const x = readNpy(path.join(root, dir, 'input.npy'));
    const want = readNpy(path.join(root, dir, 'output.npy'));
    let line = dir.padEnd(28);
    try {
      const sess = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
      const res = await sess.run({ input: new ort.Tensor('float32', x.data, x.shape) });
      const got = res.output;
      let maxAbs = 0;
      let bad = 0;
      if (got.dims.join('x') !== want.shape.join('x')) throw new Error('shape ' + got.dims + ' want ' + want.shape);
      for (let i = 0; i < want.data.length; i++) {
        const d = Math.abs(got.data[i] - want.data[i]);
        maxAbs = Math.max(maxAbs, d);
        if (d > 1e-4 + 1e-4 * Math.abs(want.data[i])) bad++;
      }
      line += (bad ? 'FAIL' : 'ok  ') + ' shape=' + got.dims.join('x') + ' max|diff|=' + maxAbs.toExponential(2);
      // batch 1 too: the batch axis is dynamic (not for bn_train: batch statistics)
      if (dir === 'bn_train') { console.log(line); if (bad) failed++; continue; }
      const per = x.data.length / x.shape[0];
      const one = await sess.run({ input: new ort.Tensor('float32', x.data.slice(0, per), [1, ...x.shape.slice(1)]) });
      const outPer = want.data.length / want.shape[0];
      let d1 = 0;
      for (let i = 0; i < outPer; i++) d1 = Math.max(d1, Math.abs(one.output.data[i] - want.data[i]));
      line += ' batch1 max|diff|=' + d1.toExponential(2);
      if (bad || d1 > 1e-4) failed++;
    } catch (e) {
      line += 'ERROR ' + String(e.message || e).split('\n')[0];
      failed++;
    }
    console.log(line);
  }
  console.log('onnxruntime-node', require(path.join(ortDir, 'node_modules', 'onnxruntime-node', 'package.json')).version, failed ? failed + ' failed' : 'all ok');
  process.exit(failed ? 1 : 0);
}

main();
