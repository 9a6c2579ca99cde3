// Package omaha speaks the Omaha update protocol (version 3.0) the way
// Container Linux's update_engine and its servers (CoreUpdate, Nebraska)
// speak it: the client POSTs a <request> naming its app, version, track
// (the update group) and machine, with an update check, a ping, or events;
// the server answers a <response> with, per app, "noupdate" or a manifest
// of the package to fetch.
//
// Container Linux's quirks are kept so its servers understand us: the
// package's SHA-256 travels (base64) on the "postinstall" action, next to
// the standard hash_sha256 (hex) attribute of newer servers; the update
// group travels as the app's track.
//
// flatcar/go-omaha, the maintained Go implementation, is not served by the
// module proxy this project builds from, so the subset Orbit uses is
// written here from the protocol's description.
package omaha

import "encoding/xml"

// Protocol is the protocol version sent and expected.
const Protocol = "3.0"

// Request is what a client POSTs.
type Request struct {
	XMLName        xml.Name      `xml:"request"`
	Protocol       string        `xml:"protocol,attr"`
	Version        string        `xml:"version,attr,omitempty"`
	UpdaterVersion string        `xml:"updaterversion,attr,omitempty"`
	InstallSource  string        `xml:"installsource,attr,omitempty"`
	IsMachine      int           `xml:"ismachine,attr,omitempty"`
	OS             *OS           `xml:"os"`
	Apps           []*AppRequest `xml:"app"`
}

// OS describes the client's system.
type OS struct {
	Platform string `xml:"platform,attr,omitempty"`
	Version  string `xml:"version,attr,omitempty"`
	SP       string `xml:"sp,attr,omitempty"`
	Arch     string `xml:"arch,attr,omitempty"`
}

// AppRequest is one app's part of a request.
type AppRequest struct {
	ID          string          `xml:"appid,attr"`
	Version     string          `xml:"version,attr,omitempty"`
	Track       string          `xml:"track,attr,omitempty"`
	MachineID   string          `xml:"machineid,attr,omitempty"`
	BootID      string          `xml:"bootid,attr,omitempty"`
	Board       string          `xml:"board,attr,omitempty"`
	OEM         string          `xml:"oem,attr,omitempty"`
	Ping        *Ping           `xml:"ping"`
	UpdateCheck *UpdateCheck    `xml:"updatecheck"`
	Events      []*EventRequest `xml:"event"`
}

// Ping says the client is alive.
type Ping struct {
	Active int `xml:"active,attr,omitempty"`
}

// UpdateCheck asks for an update.
type UpdateCheck struct{}

// EventType says what happened, in update_engine's numbering.
type EventType int

// The events an update agent reports.
const (
	EventUpdateComplete         EventType = 3
	EventUpdateDownloadStarted  EventType = 13
	EventUpdateDownloadFinished EventType = 14
	EventUpdateInstalled        EventType = 800 // Container Linux's: written, waiting for a reboot
)

// EventResult says how it went.
type EventResult int

// Results. SuccessReboot on an UpdateComplete means "booted into the new
// version"; Error on it is how a rollback is reported.
const (
	EventResultError         EventResult = 0
	EventResultSuccess       EventResult = 1
	EventResultSuccessReboot EventResult = 2
)

// EventRequest reports an event.
type EventRequest struct {
	Type            EventType   `xml:"eventtype,attr"`
	Result          EventResult `xml:"eventresult,attr"`
	ErrorCode       int         `xml:"errorcode,attr,omitempty"`
	PreviousVersion string      `xml:"previousversion,attr,omitempty"`
	NextVersion     string      `xml:"nextversion,attr,omitempty"`
}

// Response is what the server answers.
type Response struct {
	XMLName  xml.Name       `xml:"response"`
	Protocol string         `xml:"protocol,attr"`
	Server   string         `xml:"server,attr,omitempty"`
	DayStart *DayStart      `xml:"daystart"`
	Apps     []*AppResponse `xml:"app"`
}

// DayStart is the server's clock, as seconds since midnight.
type DayStart struct {
	ElapsedSeconds int `xml:"elapsed_seconds,attr"`
}

// App statuses and update check statuses.
const (
	StatusOK       = "ok"
	StatusNoUpdate = "noupdate"
	StatusUnknown  = "error-unknownApplication"
)

// AppResponse is one app's part of a response.
type AppResponse struct {
	ID          string           `xml:"appid,attr"`
	Status      string           `xml:"status,attr,omitempty"`
	Ping        *StatusElement   `xml:"ping"`
	UpdateCheck *UpdateResponse  `xml:"updatecheck"`
	Events      []*StatusElement `xml:"event"`
}

// StatusElement acknowledges a ping or an event.
type StatusElement struct {
	Status string `xml:"status,attr"`
}

// UpdateResponse answers an update check.
type UpdateResponse struct {
	Status   string    `xml:"status,attr"`
	URLs     *URLs     `xml:"urls"`
	Manifest *Manifest `xml:"manifest"`
}

// URLs are where the packages can be fetched: each package's URL is a
// codebase followed by the package name.
type URLs struct {
	URLs []URL `xml:"url"`
}

// URL is one download location.
type URL struct {
	CodeBase string `xml:"codebase,attr"`
}

// Manifest names the version offered, its packages and actions.
type Manifest struct {
	Version  string   `xml:"version,attr"`
	Packages Packages `xml:"packages"`
	Actions  Actions  `xml:"actions"`
}

// Packages lists packages.
type Packages struct {
	Packages []Package `xml:"package"`
}

// Package is a file to download.
type Package struct {
	Name      string `xml:"name,attr"`
	SHA1      string `xml:"hash,attr,omitempty"`        // base64, as Container Linux's servers send
	SHA256Hex string `xml:"hash_sha256,attr,omitempty"` // hex, Omaha 3.1
	Size      int64  `xml:"size,attr"`
	Required  bool   `xml:"required,attr"`
}

// Actions lists actions.
type Actions struct {
	Actions []Action `xml:"action"`
}

// Action is run at an event; Container Linux hangs the payload's SHA-256
// (base64) on the postinstall action.
type Action struct {
	Event                 string `xml:"event,attr"`
	SHA256                string `xml:"sha256,attr,omitempty"`
	DisablePayloadBackoff bool   `xml:"DisablePayloadBackoff,attr,omitempty"`
}
