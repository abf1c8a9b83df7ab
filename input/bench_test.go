package input_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/llmfleet/llmfleet/input"
)

// BenchmarkReaderJSONL reads 100,000 generated JSONL items per op (run by
// make bench; figures are printed, not asserted).
func BenchmarkReaderJSONL(b *testing.B) {
	const n = 100_000
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `{"id":"item-%06d","prompt":"Summarise document %d in one sentence.","max_tokens":128,"temperature":0.2,"metadata":{"batch":%d,"tags":["a","b"]}}`+"\n", i, i, i%100)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := input.NewReader(bytes.NewReader(data), "bench.jsonl", input.Options{System: "Be brief."})
		if err != nil {
			b.Fatal(err)
		}
		count := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		if count != n {
			b.Fatalf("read %d items, want %d (rejections %v)", count, n, r.Rejections()[:1])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
}
