#!/usr/bin/env node
// ONNX Runtime reference for tools/bench: times a forward pass of an ONNX model on a random
// float32 input, with onnxruntime-node (CPU execution provider).
//
//   node tools/bench/ort_bench.js MODEL.onnx BATCH SIZE [ITERS] [THREADS]
//
// onnxruntime-node is loaded from $ORT_NODE_MODULES, else tools/ort/node_modules (see
// tools/ort/README.md for installing it). The model's first input gets shape
// [BATCH, 3, SIZE, SIZE]. Graph optimisation level "all" (what a server gets), THREADS
// intra-op threads (default 2, the cores the toolkit uses). Prints one JSON line with the
// fields of the Go program's -json output.
'use strict';

const path = require('path');

async function main() {
  const [model, batchS, sizeS, itersS, threadsS] = process.argv.slice(2);
  if (!model || !batchS || !sizeS) {
    process.stderr.write('usage: node ort_bench.js MODEL.onnx BATCH SIZE [ITERS] [THREADS]\n');
    process.exit(2);
  }
  const batch = Number(batchS), size = Number(sizeS);
  const iters = Number(itersS || 5), threads = Number(threadsS || process.env.BENCH_THREADS || 2);
  const dir = process.env.ORT_NODE_MODULES || path.join(__dirname, '..', 'ort', 'node_modules');
  const ort = require(path.resolve(dir, 'onnxruntime-node'));
  const t0 = process.hrtime.bigint();
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all',
    intraOpNumThreads: threads, interOpNumThreads: 1,
  });
  const n = batch * 3 * size * size;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, [batch, 3, size, size]) };
  const build = Number(process.hrtime.bigint() - t0) / 1e9;
  for (let i = 0; i < 2; i++) await sess.run(feeds);
  const times = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < iters; i++) {
    const s = process.hrtime.bigint();
    await sess.run(feeds);
    times.push(Number(process.hrtime.bigint() - s) / 1e9);
  }
  const c = process.cpuUsage(c0);
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({
    label: process.env.BENCH_LABEL || '', impl: 'onnxruntime', mode: 'forward', size, batch, iters, blas: 'ort-node', gomaxprocs: threads,
    best_s: times[0], median_s: med, cpu_s_per_run: (c.user + c.system) / 1e6 / iters,
    images_per_s: batch / times[0], median_images_per_s: batch / med, build_s: build,
  }));
}

main().catch((e) => { process.stderr.write('ort_bench: ' + (e.stack || e) + '\n'); process.exit(1); });
