package tfevents

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"toolkit/internal/testref"
)

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

type readEvent struct {
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

// readBack reads an event file with TensorBoard's protocol buffers and Python.
func readBack(t *testing.T, path string) []readEvent {
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
	protos, _ := filepath.Glob("testdata/proto/tensorboard/compat/proto/*.proto")
	cmd := exec.Command(protoc, append([]string{"--proto_path=testdata/proto", "--python_out=" + gen}, protos...)...)
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
	var evs []readEvent
	if err := json.Unmarshal(out, &evs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return evs
}

// Scalars written by the Writer come back, every CRC right, through TensorBoard's own
// protocol buffers: the file version first, then each scalar's step, tag, value (as a
// float32, TensorBoard's simple_value) and wall time.
func TestScalarsReadBack(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1_700_000_000, 250_000_000)
	var times []time.Time // every time the writer asked for
	now := func() time.Time {
		clock = clock.Add(1500 * time.Millisecond)
		times = append(times, clock)
		return clock
	}
	w, err := create(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	type scalar struct {
		tag   string
		step  int64
		value float64
	}
	want := []scalar{
		{"train/loss", 0, 2.302585092994046},
		{"train/loss", 1, 1.5},
		{"val/accuracy", 1, 0.875},
		{"lr/block1", 7, 3.0e-5},
		{"lr/head", 1 << 40, -1e-3},
		{"grad_norm/Late group", 12, math.Inf(1)},
		{"étape/perte", 13, 0},
	}
	for _, s := range want {
		if err := w.Scalar(s.tag, s.step, s.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(w.Path()), "events.out.tfevents.1700000001.") {
		t.Errorf("file name %s", w.Path())
	}
	evs := readBack(t, w.Path())
	if len(evs) != len(want)+1 {
		t.Fatalf("%d events, want %d", len(evs), len(want)+1)
	}
	// times[0] named the file; each event then asked once.
	wallOf := func(i int) float64 { return float64(times[1+i].UnixNano()) / 1e9 }
	if evs[0].What != "file_version" || evs[0].FileVersion != FileVersion || math.Abs(evs[0].WallTime-wallOf(0)) > 1e-6 {
		t.Errorf("first event %+v, want the file version at %v", evs[0], wallOf(0))
	}
	for i, s := range want {
		ev := evs[i+1]
		if ev.What != "summary" || ev.Step != s.step || math.Abs(ev.WallTime-wallOf(i+1)) > 1e-6 || len(ev.Values) != 1 {
			t.Errorf("event %d: %+v, want step %d at %v", i+1, ev, s.step, wallOf(i+1))
			continue
		}
		v := ev.Values[0]
		got, err := strconv.ParseFloat(v.SimpleValue, 64)
		if v.Tag != s.tag || v.Kind != "simple_value" || err != nil || got != float64(float32(s.value)) {
			t.Errorf("event %d: %+v, want %s = %v", i+1, v, s.tag, float32(s.value))
		}
	}
	// A second writer in the same folder and second gets a file of its own.
	clock = times[0].Add(-1500 * time.Millisecond)
	w2, err := create(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Path() == w.Path() {
		t.Fatalf("the second writer reuses %s", w.Path())
	}
}
