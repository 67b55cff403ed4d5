// Package onnxpb holds the protobuf message types of the ONNX file format, generated
// with gogo/protobuf from onnx.proto in this folder.
//
// Only toolkit/onnx should use these types: everything else works on the IR in
// package toolkit/onnx. The schema is a subset of the ONNX specification with the
// specification's field numbers; see onnx.proto for what was left out and why.
//
// Regenerating needs protoc (Debian's protobuf-compiler) and protoc-gen-gogofaster:
//
//	go install github.com/gogo/protobuf/protoc-gen-gogofaster@v1.3.2
//	go generate ./onnx/onnxpb
package onnxpb

//go:generate protoc --proto_path=. --gogofaster_out=paths=source_relative:. onnx.proto
