package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"toolkit/finetune"
)

func main() {
	debug.SetGCPercent(25)
	cfg, err := finetune.LoadConfig(os.Args[1])
	if err != nil {
		panic(err)
	}
	go func() {
		var maxLive uint64
		for {
			time.Sleep(20 * time.Millisecond)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			// live at last GC
			if ms.NextGC > 0 && ms.HeapInuse > maxLive {
				maxLive = ms.HeapInuse
				f, _ := os.Create("/tmp/heap_max.prof")
				pprof.WriteHeapProfile(f)
				f.Close()
				fmt.Fprintln(os.Stderr, "max heap inuse", maxLive>>20, "MB at", time.Now().Format("15:04:05.000"))
			}
		}
	}()
	t, err := finetune.New(*cfg)
	if err != nil {
		panic(err)
	}
	if _, err := t.Run(context.Background()); err != nil {
		panic(err)
	}
}
