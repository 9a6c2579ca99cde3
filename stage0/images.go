package stage0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	digest "github.com/opencontainers/go-digest"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod"
)

// RemoveImages removes the images refs name from the store, with the blobs
// and layers no other image uses. An image used by a pod that is not yet
// garbage-collected is refused (its layers are the pod's root filesystem),
// and then nothing is removed.
func (e *Env) RemoveImages(ctx context.Context, refs []string) error {
	st, err := e.Store()
	if err != nil {
		return err
	}
	users, err := e.imageUsers()
	if err != nil {
		return err
	}
	var ids []digest.Digest
	for _, ref := range refs {
		img, err := st.Resolve(ref)
		if err != nil {
			return fmt.Errorf("remove image %s: %w", ref, err)
		}
		if pods := users[img.ID]; len(pods) > 0 {
			return fmt.Errorf("remove image %s: used by pod %s (remove the pod first, or let orbit gc collect it): %w", ref, pods[0], store.ErrInUse)
		}
		if !slices.Contains(ids, img.ID) {
			ids = append(ids, img.ID)
		}
	}
	return st.Remove(ctx, ids)
}

// imageUsers maps image IDs to the UUIDs of the pods, in any state, whose
// apps use them.
func (e *Env) imageUsers() (map[digest.Digest][]string, error) {
	files, err := filepath.Glob(filepath.Join(e.DataDir, "pods", "*", "*", "pod.json"))
	if err != nil {
		return nil, err
	}
	users := map[digest.Digest][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // moved or removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read pod manifest: %w", err)
		}
		var m pod.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("pod manifest %s: %w", f, err)
		}
		uuid := filepath.Base(filepath.Dir(f))
		for _, a := range m.Apps {
			users[a.Image.ID] = append(users[a.Image.ID], uuid)
		}
	}
	return users, nil
}
