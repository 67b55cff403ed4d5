// Package tfeventstest reads TensorBoard event files back for tests, as TensorBoard
// does: with its own protocol buffers, through Python.
package tfeventstest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"toolkit/internal/testref"
)

// thisDir is this package's folder.
func thisDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// readerScript reads an event file as TensorBoard's record reader does: each record's
// length and data checked against their masked CRC-32C (the crc32c package), each record
// parsed as tensorboard.Event with the classes protoc generates from TensorBoard's own
// event.proto and summary.proto (testdata/proto). It prints the events as JSON.
const readerScript = `
import sys, json, struct, crc32c
sys.path.insert(0, sys.argv[1])
from tensorboard.compat.proto import event_pb2

def masked(data):
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xffffffff

out = []
with open(sys.argv[2], 'rb') as f:
    while True:
        head = f.read(12)
        if not head:
            break
        length, = struct.unpack('<Q', head[:8])
        if struct.unpack('<I', head[8:])[0] != masked(head[:8]):
            raise SystemExit('length CRC mismatch')
        data = f.read(length)
        if struct.unpack('<I', f.read(4))[0] != masked(data):
            raise SystemExit('data CRC mismatch')
        ev = event_pb2.Event()
        ev.ParseFromString(data)
        rec = {'wall_time': ev.wall_time, 'step': ev.step, 'what': ev.WhichOneof('what')}
        if rec['what'] == 'file_version':
            rec['file_version'] = ev.file_version
        if rec['what'] == 'summary':
            rec['values'] = [{'tag': v.tag, 'kind': v.WhichOneof('value'), 'simple_value': repr(v.simple_value)} for v in ev.summary.value]
        out.append(rec)
print(json.dumps(out))
`

// Event is one event of a file as TensorBoard reads it.
type Event struct {
	WallTime    float64 `json:"wall_time"`
	Step        int64   `json:"step"`
	What        string  `json:"what"`
	FileVersion string  `json:"file_version"`
	Values      []struct {
		Tag         string `json:"tag"`
		Kind        string `json:"kind"`
		SimpleValue string `json:"simple_value"` // Python's repr, inf and nan included
	} `json:"values"`
}

// Read reads an event file with TensorBoard's protocol buffers (../testdata/proto,
// compiled by protoc for Python) and Python's protobuf, every record's CRC checked.
func Read(t testing.TB, path string) []Event {
	t.Helper()
	py := "/usr/bin/python3"
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		testref.Missing(t, "protoc is not installed (Debian: apt-get install protobuf-compiler)")
	}
	if err := exec.Command(py, "-c", "import google.protobuf, crc32c").Run(); err != nil {
		testref.Missing(t, "Python's protobuf and crc32c for %s (Debian: apt-get install python3-protobuf python3-crc32c)", py)
	}
	gen := t.TempDir()
	protoDir := filepath.Join(thisDir(), "..", "testdata", "proto")
	protos, _ := filepath.Glob(filepath.Join(protoDir, "tensorboard", "compat", "proto", "*.proto"))
	cmd := exec.Command(protoc, append([]string{"--proto_path=" + protoDir, "--python_out=" + gen}, protos...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	script := filepath.Join(t.TempDir(), "read.py")
	if err := os.WriteFile(script, []byte(readerScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, gen, path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("reading %s: %v\n%s", path, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var evs []Event
	if err := json.Unmarshal(out, &evs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return evs
}
