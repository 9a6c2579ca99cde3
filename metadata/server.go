package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// Server holds the registered pods and the HMAC key.
type Server struct {
	key []byte
	// Port is the metadata API's port, told to registering pods.
	Port int
	// Log, when set, is told of refused requests.
	Log *log.Logger

	mu     sync.RWMutex
	pods   map[string]*entry // by token
	tokens map[string]string // token by pod UUID
}

// entry is a registered pod, parsed once.
type entry struct {
	uuid     string
	manifest []byte
	pm       *schema.PodManifest
	apps     map[string]*appEntry
	ips      map[string]bool
}

type appEntry struct {
	manifest    []byte
	id          string
	annotations []byte
}

// NewServer makes a service with a fresh HMAC key.
func NewServer(port int) (*Server, error) {
	key := make([]byte, sha512.Size)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make HMAC key: %w", err)
	}
	return &Server{key: key, Port: port, pods: map[string]*entry{}, tokens: map[string]string{}}, nil
}

// Register adds a pod, replacing an earlier registration of the same UUID,
// and returns its token.
func (s *Server) Register(reg *Registration) (string, error) {
	uuid, err := types.NewUUID(reg.UUID)
	if err != nil {
		return "", fmt.Errorf("pod UUID %q: %w", reg.UUID, err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(reg.Manifest, &pm); err != nil {
		return "", fmt.Errorf("pod %s: appc pod manifest: %w", uuid, err)
	}
	e := &entry{uuid: uuid.String(), manifest: reg.Manifest, pm: &pm, apps: map[string]*appEntry{}, ips: map[string]bool{}}
	for _, ra := range pm.Apps {
		a, ok := reg.Apps[ra.Name.String()]
		if !ok {
			return "", fmt.Errorf("pod %s: app %s has no image data", uuid, ra.Name)
		}
		var im schema.ImageManifest
		if err := json.Unmarshal(a.ImageManifest, &im); err != nil {
			return "", fmt.Errorf("pod %s: app %s: image manifest: %w", uuid, ra.Name, err)
		}
		// The app's annotations are its image's, overridden by the pod
		// manifest's for the app.
		annots := append(types.Annotations(nil), im.Annotations...)
		for _, an := range ra.Annotations {
			annots.Set(an.Name, an.Value)
		}
		if len(annots) == 0 {
			annots = types.Annotations{}
		}
		ab, err := json.Marshal(annots)
		if err != nil {
			return "", err
		}
		e.apps[ra.Name.String()] = &appEntry{manifest: a.ImageManifest, id: a.ImageID, annotations: ab}
	}
	for _, ip := range reg.IPs {
		p := net.ParseIP(ip)
		if p == nil {
			return "", fmt.Errorf("pod %s: address %q is not an IP address", uuid, ip)
		}
		e.ips[p.String()] = true
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	token := hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tokens[e.uuid]; ok {
		delete(s.pods, old)
	}
	s.pods[token] = e
	s.tokens[e.uuid] = token
	return token, nil
}

// Unregister forgets a pod; it reports whether the pod was registered.
func (s *Server) Unregister(uuid string) bool {
	u, err := types.NewUUID(uuid)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[u.String()]
	delete(s.tokens, u.String())
	delete(s.pods, t)
	return ok
}

// Registered is the number of pods registered.
func (s *Server) Registered() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pods)
}

// RegistrationHandler serves the registration API (for the unix socket):
//
//	GET    /v1/ping          200 while the service runs
//	PUT    /v1/pods/{uuid}   a Registration; answers Registered
//	DELETE /v1/pods/{uuid}
func (s *Server) RegistrationHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=us-ascii")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("PUT /v1/pods/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		var reg Registration
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&reg); err != nil {
			http.Error(w, "registration: "+err.Error(), http.StatusBadRequest)
			return
		}
		if reg.UUID != r.PathValue("uuid") {
			http.Error(w, fmt.Sprintf("registration of %q sent to %q", reg.UUID, r.PathValue("uuid")), http.StatusBadRequest)
			return
		}
		token, err := s.Register(&reg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Registered{Token: token, Port: s.Port})
	})
	mux.HandleFunc("DELETE /v1/pods/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		if !s.Unregister(r.PathValue("uuid")) {
			http.Error(w, "pod not registered", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

const (
	textType = "text/plain; charset=us-ascii"
	jsonType = "application/json"
)

// MetadataHandler serves the metadata API (for TCP), under /{token}.
func (s *Server) MetadataHandler() http.Handler {
	mux := http.NewServeMux()
	base := "/{token}/acMetadata/v1"
	mux.HandleFunc("GET "+base+"/pod/manifest", s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		reply(w, jsonType, e.manifest)
	}))
	mux.HandleFunc("GET "+base+"/pod/uuid", s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		reply(w, textType, []byte(e.uuid))
	}))
	mux.HandleFunc("GET "+base+"/pod/annotations", s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		annots := e.pm.Annotations
		if annots == nil {
			annots = types.Annotations{}
		}
		b, _ := json.Marshal(annots)
		reply(w, jsonType, b)
	}))
	mux.HandleFunc("GET "+base+"/apps/{app}/annotations", s.app(func(a *appEntry, w http.ResponseWriter) {
		reply(w, jsonType, a.annotations)
	}))
	mux.HandleFunc("GET "+base+"/apps/{app}/image/manifest", s.app(func(a *appEntry, w http.ResponseWriter) {
		reply(w, jsonType, a.manifest)
	}))
	mux.HandleFunc("GET "+base+"/apps/{app}/image/id", s.app(func(a *appEntry, w http.ResponseWriter) {
		reply(w, textType, []byte(a.id))
	}))
	mux.HandleFunc("POST "+base+"/pod/hmac/sign", s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		content, ok := formValue(w, r, "content")
		if !ok {
			return
		}
		reply(w, textType, []byte(base64.StdEncoding.EncodeToString(s.sign(e.uuid, content))))
	}))
	mux.HandleFunc("POST "+base+"/pod/hmac/verify", s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		content, ok := formValue(w, r, "content")
		if !ok {
			return
		}
		uuid, err := types.NewUUID(r.PostForm.Get("uuid"))
		if err != nil {
			http.Error(w, "uuid: "+err.Error(), http.StatusBadRequest)
			return
		}
		sig, err := base64.StdEncoding.DecodeString(r.PostForm.Get("signature"))
		if err != nil {
			http.Error(w, "signature: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !hmac.Equal(sig, s.sign(uuid.String(), content)) {
			http.Error(w, "signature does not verify", http.StatusForbidden)
			return
		}
		reply(w, textType, nil)
	}))
	return mux
}

// sign is the pod's HMAC-SHA512 of content: the UUID (fixed length in its
// canonical form) then the content, under the service's key.
func (s *Server) sign(uuid, content string) []byte {
	h := hmac.New(sha512.New, s.key)
	h.Write([]byte(uuid))
	h.Write([]byte(content))
	return h.Sum(nil)
}

func formValue(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "form: "+err.Error(), http.StatusBadRequest)
		return "", false
	}
	if _, ok := r.PostForm[name]; !ok {
		http.Error(w, "form has no "+name, http.StatusBadRequest)
		return "", false
	}
	return r.PostForm.Get(name), true
}

func reply(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// pod checks a metadata request: the header apps must send, a token that
// names a registered pod, and a source address of that pod.
func (s *Server) pod(fn func(*entry, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := s.authorize(w, r); e != nil {
			fn(e, w, r)
		}
	}
}

func (s *Server) app(fn func(*appEntry, http.ResponseWriter)) http.HandlerFunc {
	return s.pod(func(e *entry, w http.ResponseWriter, r *http.Request) {
		a, ok := e.apps[r.PathValue("app")]
		if !ok {
			http.Error(w, "no such app in the pod", http.StatusNotFound)
			return
		}
		fn(a, w)
	})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) *entry {
	if r.Header.Get("Metadata-Flavor") != "AppContainer" {
		http.Error(w, `header "Metadata-Flavor: AppContainer" missing`, http.StatusBadRequest)
		return nil
	}
	s.mu.RLock()
	e := s.pods[r.PathValue("token")]
	s.mu.RUnlock()
	if e == nil {
		s.refused(r, "unknown token")
		// The same answer as a known token from the wrong address: a
		// caller learns nothing about which tokens exist.
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil
	}
	if len(e.ips) > 0 {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !e.ips[ip.String()] {
			s.refused(r, "pod "+e.uuid+"'s token from "+r.RemoteAddr+", not one of the pod's addresses")
			http.Error(w, "forbidden", http.StatusForbidden)
			return nil
		}
	}
	return e
}

func (s *Server) refused(r *http.Request, why string) {
	if s.Log != nil {
		// The path holds the token: it is not logged.
		s.Log.Printf("refused a %s from %s: %s", r.Method, r.RemoteAddr, why)
	}
}
