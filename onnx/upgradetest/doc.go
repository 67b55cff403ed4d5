// Package upgradetest holds the tests of onnx.UpgradeOpset that run models: the opset 9
// parity fixtures, small models exercising each rewrite and the ONNX node tests below
// opset 13 are upgraded to opsets 13 and 17 and run in the toolkit's backend and in ONNX
// Runtime (tools/ort: npm ci --prefix tools/ort --ignore-scripts; TOOLKIT_ORT_DIR names
// another folder holding run.js and its node_modules), and their outputs compared with
// the originals', PyTorch's and the tests' expected ones. The ONNX checker (Debian's
// /usr/bin/python3 with onnx) checks what they write. Without ONNX Runtime or the
// checker a test is skipped after its backend checks, or fails under CI (internal/testref).
//
// These tests live here because the backend imports package onnx, so a test inside
// package onnx cannot import the backend. The package has no code of its own.
package upgradetest
