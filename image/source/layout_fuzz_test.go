package source

import (
	"bytes"
	"io"
	"strconv"
	"testing"
	"testing/fstest"

	digest "github.com/opencontainers/go-digest"
)

// FuzzOpenLayout feeds arbitrary index.json and manifest bytes to the
// layout reader: it must return an error or an image, never panic or
// hang. "MANIFEST" in the index stands for the manifest's real digest, so
// the fuzzer reaches the manifest parsing behind it.
func FuzzOpenLayout(f *testing.F) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}`)
	layer := []byte("not really a layer")
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(config).String() + `","size":` + strconv.Itoa(len(config)) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + digest.FromBytes(layer).String() + `","size":` + strconv.Itoa(len(layer)) + `}]}`)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"MANIFEST","annotations":{"org.opencontainers.image.ref.name":"x"}}]}`), manifest)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"MANIFEST"}]}`),
		[]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","platform":{"os":"linux","architecture":"amd64"}}]}`))
	f.Add([]byte(`{"manifests":[{}]}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, index, manifest []byte) {
		md := digest.FromBytes(manifest)
		fsys := fstest.MapFS{
			"oci-layout":                   {Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			"index.json":                   {Data: bytes.ReplaceAll(index, []byte("MANIFEST"), []byte(md.String()))},
			"blobs/sha256/" + md.Encoded(): {Data: manifest},
			"blobs/sha256/" + digest.FromBytes(config).Encoded(): {Data: config},
			"blobs/sha256/" + digest.FromBytes(layer).Encoded():  {Data: layer},
		}
		img, _, err := openLayout(fsys, "")
		if err != nil {
			return
		}
		// What the store asks of an image must not panic either.
		img.RawConfigFile()
		img.MediaType()
		if ls, err := img.Layers(); err == nil {
			for _, l := range ls {
				if rc, err := l.Compressed(); err == nil {
					io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
		}
	})
}
