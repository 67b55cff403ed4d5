package onnxpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	gogoproto "github.com/gogo/protobuf/proto"
	golangproto "github.com/golang/protobuf/proto"
	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/simple"

	"toolkit/onnx/onnxpb"
)

// TestCoexistsWithOnnxGo links onnx-go (which registers "onnx.ModelProto" and friends
// with golang/protobuf) into the same binary as these types and checks that the two
// registrations do not collide, and that both decode the same file.
func TestCoexistsWithOnnxGo(t *testing.T) {
	if gogoproto.MessageType("toolkit.onnx.ModelProto") == nil {
		t.Error("toolkit.onnx.ModelProto is not registered with gogo/protobuf")
	}
	if gogoproto.MessageType("onnx.ModelProto") != nil {
		t.Error("gogo/protobuf has an onnx.ModelProto: the names may collide")
	}
	if golangproto.MessageType("onnx.ModelProto") == nil {
		t.Error("onnx-go's onnx.ModelProto is not registered: is onnx-go linked in?")
	}
	if golangproto.MessageType("toolkit.onnx.ModelProto") != nil {
		t.Error("toolkit.onnx.ModelProto is registered with golang/protobuf too")
	}

	data, err := os.ReadFile("../testdata/tiny_vgg.onnx")
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := mp.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	if mp.Graph == nil || len(mp.Graph.Node) == 0 || mp.IrVersion != 7 {
		t.Fatalf("decoded %d nodes, IR %d", len(mp.GetGraph().GetNode()), mp.IrVersion)
	}
	model := onnxgo.NewModel(simple.NewSimpleGraph())
	err = model.UnmarshalBinary(data)
	// onnx-go may not know every operator; it must at least have parsed the file.
	if err != nil && strings.Contains(err.Error(), "proto") {
		t.Errorf("onnx-go cannot parse the file: %v", err)
	}
}

// TestNoRegistrationWarnings runs this test binary again and checks that starting it,
// which runs every init, logs no duplicate-registration warning.
func TestNoRegistrationWarnings(t *testing.T) {
	if os.Getenv("ONNXPB_CHILD") != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoRegistrationWarnings$")
	cmd.Env = append(os.Environ(), "ONNXPB_CHILD=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if s := out.String(); strings.Contains(strings.ToLower(s), "duplicate") || strings.Contains(s, "conflict") {
		t.Errorf("registration warnings:\n%s", s)
	}
}
