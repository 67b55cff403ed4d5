package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// printReport reads the JSON lines that compare.sh collected (one [Result] per
// benchmark run, from this program, tools/bench/torch_bench.py and
// tools/bench/ort_bench.js) and prints, for each environment label and workload,
// every implementation's images per second and its ratio to PyTorch and to
// ONNX Runtime (above 1: the toolkit is faster).
func printReport(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rs []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s: %v in %q", path, err, line)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	type key struct {
		label, mode string
		size, batch int
	}
	var keys []key
	groups := map[key][]Result{}
	for _, r := range rs {
		k := key{r.Label, r.Mode, r.Size, r.Batch}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	label := "\x00"
	for _, k := range keys {
		if k.label != label {
			label = k.label
			fmt.Printf("\n== %s\n", orDefault(label, "(no label)"))
			fmt.Printf("%-8s %-10s %-14s %-20s %3s %9s %9s %9s %9s %9s %9s\n",
				"mode", "input", "impl", "backend", "thr", "best s", "median s", "cpu s", "img/s", "vs torch", "vs ORT")
		}
		// The reference is each runtime's best run over its thread settings.
		ref := map[string]float64{}
		for _, r := range groups[k] {
			if !strings.HasPrefix(r.Impl, "toolkit") {
				ref[r.Impl] = max(ref[r.Impl], r.ImagesPerS)
			}
		}
		for _, r := range groups[k] {
			vsT, vsO := "", ""
			if strings.HasPrefix(r.Impl, "toolkit") {
				if t := ref["pytorch"]; t > 0 {
					vsT = fmt.Sprintf("%.2fx", r.ImagesPerS/t)
				}
				if o := ref["onnxruntime"]; o > 0 {
					vsO = fmt.Sprintf("%.2fx", r.ImagesPerS/o)
				}
			}
			fmt.Printf("%-8s %-10s %-14s %-20s %3d %9.3f %9.3f %9.3f %9.2f %9s %9s\n",
				k.mode, fmt.Sprintf("%dx3x%d", k.batch, k.size), r.Impl, trunc(r.BLAS, 20), r.GOMAXPROCS,
				r.BestSec, r.MedianSec, r.CPUSec, r.ImagesPerS, vsT, vsO)
		}
	}
	fmt.Println("\nimg/s is batch / best wall time; vs torch and vs ORT divide the toolkit's img/s by the reference's")
	fmt.Println("(its best over 1 and 2 threads; above 1: the toolkit is faster). thr: GOMAXPROCS, or the reference's threads.")
	fmt.Println("cpu s is the process's CPU time per run: on a shared machine it moves much less than wall time.")
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
