package crosscheck

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
	"toolkit/npy"
)

func TestScratch(t *testing.T) {
	dirs, _ := filepath.Glob("../testdata/parity/*_opset*")
	for _, d := range dirs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Println(filepath.Base(d), "PANIC", r)
				}
			}()
			b, _ := os.ReadFile(filepath.Join(d, "model.onnx"))
			g := gorgonnx.NewGraph()
			m := onnxgo.NewModel(g)
			if err := m.UnmarshalBinary(b); err != nil {
				fmt.Println(filepath.Base(d), "decode", err)
				return
			}
			x, _ := npy.ReadFile(filepath.Join(d, "input.npy"))
			want, _ := npy.ReadFile(filepath.Join(d, "output.npy"))
			if err := m.SetInput(0, tensor.New(tensor.WithShape(x.Shape...), tensor.WithBacking(x.Data))); err != nil {
				fmt.Println(filepath.Base(d), "setinput", err)
				return
			}
			if err := g.Run(); err != nil {
				fmt.Println(filepath.Base(d), "run", err)
				return
			}
			out, err := m.GetOutputTensors()
			if err != nil {
				fmt.Println(filepath.Base(d), "out", err)
				return
			}
			got := out[0].Data().([]float32)
			var md float64
			for i := range want.Data {
				dd := float64(got[i] - want.Data[i])
				if dd < 0 {
					dd = -dd
				}
				if dd > md {
					md = dd
				}
			}
			fmt.Println(filepath.Base(d), "OK", out[0].Shape(), md)
		}()
	}
}
