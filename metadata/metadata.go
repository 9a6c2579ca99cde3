// Package metadata is the appc metadata service (the App Container spec's
// "App Container Metadata Service"): apps of a pod read their pod's
// manifest, UUID and annotations, their app's image manifest, image ID and
// annotations, and sign and verify content with the pod's HMAC identity.
//
// The service has two faces:
//
//   - the registration API, an HTTP API on a unix socket only root can
//     open: stage1 registers a pod (Registration) before its apps start and
//     gets a token back, and unregisters it when the pod ends;
//   - the metadata API, HTTP on TCP, which apps reach over the pod's network
//     at AC_METADATA_URL = http://<host address>:<port>/<token>. Every
//     request names the pod by its token (256 random bits, never the UUID),
//     must come from one of the pod's addresses when it has any, and must
//     carry the header "Metadata-Flavor: AppContainer"; so a pod reads its
//     own data and no other pod's.
//
// The HMAC key is made when the service starts and lives in its memory only:
// a signature verifies while the service that made it runs.
package metadata

import (
	"encoding/json"
)

// DefaultSocket is where the registration API listens unless told
// otherwise.
const DefaultSocket = "/run/orbit/metadata-svc.sock"

// DefaultPort is the metadata API's TCP port (rkt's, so firewall rules
// carry over).
const DefaultPort = 18112

// Registration is what stage1 tells the service of a pod.
type Registration struct {
	UUID string `json:"uuid"`
	// Manifest is the pod's appc pod manifest (schema.PodManifest), served
	// as it is.
	Manifest json.RawMessage `json:"manifest"`
	// Apps are the apps' image manifests and IDs, by app name.
	Apps map[string]App `json:"apps"`
	// IPs are the pod's addresses: requests from other addresses are
	// refused. Empty (a pod in the host's network) allows any source.
	IPs []string `json:"ips,omitempty"`
}

// App is one app's image data.
type App struct {
	// ImageManifest is the appc image manifest (schema.ImageManifest).
	ImageManifest json.RawMessage `json:"imageManifest"`
	// ImageID is the appc image ID (sha512-...).
	ImageID string `json:"imageID"`
}

// Registered is the service's answer to a registration.
type Registered struct {
	// Token goes in the pod's AC_METADATA_URL path.
	Token string `json:"token"`
	// Port is the metadata API's TCP port.
	Port int `json:"port"`
}
