package main

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/orbit-pods/orbit/image/store"
)

// progressBars gives stage0 a progress hook that draws one bar per layer on
// stderr (each layer is fetched and unpacked in one pass), or nil when
// stderr is not a terminal: logs and pipes get no bars.
func progressBars() func(ref string) (func(store.Layer, io.Reader) io.ReadCloser, func()) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return func(ref string) (func(store.Layer, io.Reader) io.ReadCloser, func()) {
		p := mpb.New(mpb.WithOutput(os.Stderr), mpb.WithWidth(40))
		hook := func(l store.Layer, r io.Reader) io.ReadCloser {
			bar := p.AddBar(l.Size,
				mpb.PrependDecorators(decor.Name(l.Digest.Encoded()[:12]+" ")),
				mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
			)
			return &barReader{ReadCloser: bar.ProxyReader(r), bar: bar}
		}
		return hook, p.Wait
	}
}

// barReader ends its bar when the store is done with the layer, so an
// interrupted or failed layer does not keep Wait waiting.
type barReader struct {
	io.ReadCloser
	bar *mpb.Bar
}

func (b *barReader) Close() error {
	if !b.bar.Completed() {
		b.bar.Abort(false)
	}
	return nil
}
