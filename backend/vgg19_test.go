package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"toolkit/onnx"
)

// TestVGG19AgainstPyTorch runs full-size torchvision VGG19 exports (made by
// tools/make_vgg19.py, 1.3 GB, not committed) and compares with PyTorch's outputs. It
// takes minutes, so it runs only when TOOLKIT_VGG19_DIR names the folder:
//
//	/usr/bin/python3 tools/make_vgg19.py /tmp/vgg19
//	TOOLKIT_VGG19_DIR=/tmp/vgg19 go test -run VGG19 -timeout 30m ./backend/
func TestVGG19AgainstPyTorch(t *testing.T) {
	dir := os.Getenv("TOOLKIT_VGG19_DIR")
	if dir == "" {
		t.Skip("set TOOLKIT_VGG19_DIR to a folder made by tools/make_vgg19.py to run the full-size VGG19 check")
	}
	x := readNPY(t, filepath.Join(dir, "input.npy"))
	for _, name := range []string{"vgg19-features", "vgg19", "vgg19_bn-features", "vgg19_bn-features-fused"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".onnx")
			if _, err := os.Stat(path); err != nil {
				// The folder was given: tools/make_vgg19.py writes every model.
				t.Fatalf("%s: %v (remake the folder with /usr/bin/python3 tools/make_vgg19.py %s)", path, err, dir)
			}
			start := time.Now()
			ir, err := onnx.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			read := time.Since(start)
			want := readNPY(t, filepath.Join(dir, name+"_output.npy"))
			check := func(what string, ir *onnx.Model) {
				t.Helper()
				m, err := NewModel(ir)
				if err != nil {
					t.Fatal(err)
				}
				p, err := m.Program(Options{InputShapes: map[string][]int{m.Inputs()[0].Name: x.Shape}})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if err := p.Run([][]float32{x.Data}, nil); err != nil {
					t.Fatal(err)
				}
				e := relErr(p.Output(0), want.Data)
				t.Logf("%s %s: read %v, forward %v, relative error %.3g", name, what, read, time.Since(start), e)
				if e > parityTolerance {
					t.Errorf("%s %s: relative error %.3g against PyTorch", name, what, e)
				}
			}
			check("as exported", ir)
			if !strings.Contains(name, "features") {
				// The full network cut before its classifier is the features network.
				at, err := onnx.HeadlessCut(ir)
				if err != nil {
					t.Fatal(err)
				}
				cut, err := onnx.Cut(ir, at)
				if err != nil {
					t.Fatal(err)
				}
				want = readNPY(t, filepath.Join(dir, name+"-features_output.npy"))
				check("cut at "+at, cut)
				return
			}
			// The features output must survive a write and a read.
			written := filepath.Join(t.TempDir(), "w.onnx")
			if err := onnx.Write(written, ir); err != nil {
				t.Fatal(err)
			}
			back, err := onnx.Read(written)
			if err != nil {
				t.Fatal(err)
			}
			check("written and read back", back)
		})
	}
}
