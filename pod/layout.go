package pod

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Dir is the directory of one pod. Its parts are named here so that stage0,
// stage1 and gc agree on them.
type Dir string

// ManifestFile is pod.json.
func (d Dir) ManifestFile() string { return filepath.Join(string(d), "pod.json") }

// AppDir holds an app's overlay upper and work directories and its rootfs
// mount point.
func (d Dir) AppDir(app string) string { return filepath.Join(string(d), "apps", app) }

// Rootfs is where the app's overlay root filesystem is mounted.
func (d Dir) Rootfs(app string) string { return filepath.Join(d.AppDir(app), "rootfs") }

// Upper and Work are the overlay's writable layer and its scratch directory.
func (d Dir) Upper(app string) string { return filepath.Join(d.AppDir(app), "upper") }

// Work is the overlay work directory of app.
func (d Dir) Work(app string) string { return filepath.Join(d.AppDir(app), "work") }

// ExitDir holds one file per app with its exit status, written by stage1.
func (d Dir) ExitDir() string { return filepath.Join(string(d), "exit") }

// ExitFile is the exit status file of app.
func (d Dir) ExitFile(app string) string { return filepath.Join(d.ExitDir(), app) }

// Stage1Dir is stage1's private part of the pod directory.
func (d Dir) Stage1Dir() string { return filepath.Join(string(d), "stage1") }

// VolumeTree is where the supervisor mounts, in the pod's mount namespace,
// a volume's source tree that came with an app command
// (ControlRequest.VolumeTrees).
func (d Dir) VolumeTree(volume string) string {
	return filepath.Join(d.Stage1Dir(), "volume-trees", volume)
}

// ContainersDir is libcontainer's state root for the pod's containers.
func (d Dir) ContainersDir() string { return filepath.Join(d.Stage1Dir(), "containers") }

// InitRootfs is the tiny root of the pod's init (the sandbox that holds the
// shared namespaces).
func (d Dir) InitRootfs() string { return filepath.Join(d.Stage1Dir(), "rootfs") }

// InitBinary is the pod's init, orbit-pod-init, which ships beside
// orbit-stage1.
const InitBinary = "orbit-pod-init"

// IDMappedDir holds the idmapped clones of the layers of a pod with a
// user namespace, mounted in stage1's mount namespace.
func (d Dir) IDMappedDir() string { return filepath.Join(d.Stage1Dir(), "idmapped") }

// VolumeDir is where an empty volume lives.
func (d Dir) VolumeDir(name string) string { return filepath.Join(string(d), "volumes", name) }

// EtcDir holds the files stage1 writes for every app's /etc: hosts,
// resolv.conf, hostname.
func (d Dir) EtcDir() string { return filepath.Join(d.Stage1Dir(), "etc") }

// SupervisorPIDFile holds the host PID of stage1, the pod's supervisor.
func (d Dir) SupervisorPIDFile() string { return filepath.Join(d.Stage1Dir(), "supervisor-pid") }

// OOMFile marks an app the kernel killed for running out of memory.
func (d Dir) OOMFile(app string) string { return filepath.Join(string(d), "oom", app) }

// ReleasedFile marks a pod whose stage1 released everything it held
// (containers, mounts, cgroups): gc need not call stage1 for it.
func (d Dir) ReleasedFile() string { return filepath.Join(d.Stage1Dir(), "released") }

// PIDFile holds the host PID of the pod's init (PID 1 of the pod).
func (d Dir) PIDFile() string { return filepath.Join(d.Stage1Dir(), "pid") }

// ParseExitStatus reads the content of an exit file.
func ParseExitStatus(b []byte) (int, error) {
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// CgroupName is the pod's cgroup, relative to the cgroup orbit was started
// in; each app gets AppCgroup under it. The pod's init stays in the
// supervisor's cgroup.
func CgroupName(uuid string) string { return "orbit-" + uuid }

// AppCgroup is the cgroup of app, relative like CgroupName.
func AppCgroup(uuid, app string) string { return CgroupName(uuid) + "/app-" + app }

// LogsDir holds the apps' log files (pod/applog), kept until gc.
func (d Dir) LogsDir() string { return filepath.Join(string(d), "logs") }

// DefaultLogFile is where app's output is logged unless the manifest says
// elsewhere (App.Log; App.LogFile gives the one in effect).
func (d Dir) DefaultLogFile(app string) string { return filepath.Join(d.LogsDir(), app+".log") }

// LogFile is where stage1 logs a's output.
func (d Dir) LogFile(a *App) string {
	if a.Log != nil && a.Log.Path != "" {
		return a.Log.Path
	}
	return d.DefaultLogFile(a.Name)
}

// MDSRegistrationFile is what stage0 has stage1 send the metadata service
// (metadata.Registration, without the pod's addresses).
func (d Dir) MDSRegistrationFile() string { return filepath.Join(string(d), "mds-registration.json") }
