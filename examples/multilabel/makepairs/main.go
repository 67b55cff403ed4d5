// Command makepairs writes the multi-label example set of examples/multilabel into
// examples/multilabel/data (or the folder given): 64x64 images of two Fashion-MNIST items
// of the demo data each, labelled with the set of their classes, as train.csv (from
// data/fmnist-5to9/train) and test.csv (from data/fmnist-5to9/test).
//
//	go run ./examples/multilabel/makepairs
//	toolkit finetune -c examples/multilabel/config.yaml
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"toolkit/internal/pairgen"
)

func main() {
	dir := flag.String("o", filepath.Join("examples", "multilabel", "data"), "where to write the set")
	from := flag.String("from", filepath.Join("data", "fmnist-5to9"), "the demo data, with train/ and test/ image folders")
	seed := flag.Uint64("seed", 1, "the set's seed")
	size := flag.Int("size", 64, "the images' side, in pixels")
	train := flag.Int("train", 1000, "training images")
	test := flag.Int("test", 1000, "test images")
	flag.Parse()
	splits := []pairgen.Split{
		{Name: "train", Source: filepath.Join(*from, "train"), Images: *train},
		{Name: "test", Source: filepath.Join(*from, "test"), Images: *test},
	}
	if err := pairgen.Write(*dir, splits, *size, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "makepairs:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: train.csv (%d images), test.csv (%d images), %dx%d\n", *dir, *train, *test, *size, *size)
}
