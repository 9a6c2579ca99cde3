# Orbit's build. `make` builds everything into build/; `make install` puts it
# under PREFIX; `make demo` runs the demo pod; `make check` runs every test.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/orbit
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DESTDIR    ?=
BUILD      ?= $(CURDIR)/build
GO         ?= go
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# orbit finds stage1 by configuration: the build's default is where
# `make install` puts it, and /etc/orbit/stage1.d can point elsewhere.
LDFLAGS := -X main.Version=$(VERSION) \
           -X github.com/orbit-pods/orbit/stage0.DefaultStage1Path=$(LIBEXECDIR)/orbit-stage1 \
           -X github.com/orbit-pods/orbit/stage0.DefaultCNIPluginDir=$(LIBEXECDIR)/cni
GOBUILD := $(GO) build -trimpath -ldflags "$(LDFLAGS)"
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

# The standard CNI plugins, built from their Go module at the pinned version,
# and the project's own (cni-plugins/).
CNI_VERSION := v1.9.1
CNI_PLUGINS := main/bridge main/loopback ipam/host-local meta/portmap meta/firewall

.PHONY: proto all binaries cni-plugins demo-image test-tools install demo check unit fuzz functional lint clean deps vm-image vm-test vm-boot os-image os-boot os-test

all: binaries cni-plugins demo-image

binaries:
	@mkdir -p $(BUILD)/bin $(BUILD)/libexec
	$(GOBUILD) -o $(BUILD)/bin/orbit ./cmd/orbit
	$(GOBUILD) -tags seccomp -o $(BUILD)/libexec/orbit-stage1 ./cmd/orbit-stage1
	CGO_ENABLED=0 $(GOBUILD) -o $(BUILD)/libexec/orbit-pod-init ./cmd/orbit-pod-init
	$(GOBUILD) -o $(BUILD)/bin/orbit-mkimage ./cmd/orbit-mkimage
	$(GOBUILD) -o $(BUILD)/bin/orbit-cri ./cmd/orbit-cri
	$(GOBUILD) -o $(BUILD)/bin/orbit-vm ./os/cmd/orbit-vm
	$(GOBUILD) -o $(BUILD)/bin/orbit-rebootmgr ./cmd/orbit-rebootmgr
	$(GOBUILD) -o $(BUILD)/bin/orbit-rebootctl ./cmd/orbit-rebootctl
	$(GOBUILD) -o $(BUILD)/bin/orbit-provision ./cmd/orbit-provision
	$(GOBUILD) -o $(BUILD)/bin/orbit-os ./os/cmd/orbit-os
	CGO_ENABLED=0 $(GOBUILD) -o $(BUILD)/bin/orbit-slot ./os/cmd/orbit-slot
	$(GOBUILD) -o $(BUILD)/bin/orbit-api-client ./cmd/orbit-api-client
	CGO_ENABLED=0 $(GOBUILD) -o $(BUILD)/bin/orbit-update ./cmd/orbit-update

cni-plugins:
	@mkdir -p $(BUILD)/cni
	for p in $(CNI_PLUGINS); do \
	  GOBIN=$(BUILD)/cni $(GO) install github.com/containernetworking/plugins/plugins/$$p@$(CNI_VERSION) || exit 1; \
	done
	$(GOBUILD) -o $(BUILD)/cni/flannel ./cni-plugins/flannel

# Programs only the functional tests run: flanneld (vxlan backend only) and
# a single-member etcd, from flannel's and etcd's Go modules. They are a
# module of their own (tools/flannel) so the main module does not carry
# their dependencies. From a cold build cache they take about 2.5 min on
# 2 cores (modules already downloaded); seconds after that.
test-tools:
	@mkdir -p $(BUILD)/tools
	cd tools/flannel && $(GO) build -trimpath -o $(BUILD)/tools/orbit-flanneld ./flanneld
	cd tools/flannel && $(GO) build -trimpath -o $(BUILD)/tools/orbit-test-etcd ./etcd
	cd tools/critools && $(GO) build -trimpath -o $(BUILD)/tools/crictl sigs.k8s.io/cri-tools/cmd/crictl
	cd tools/critools && $(GO) test -c -trimpath -o $(BUILD)/tools/critest sigs.k8s.io/cri-tools/cmd/critest

# The demo image: busybox from Debian's busybox-static, packed by Orbit's own
# image writer into an OCI archive. Nothing binary is checked in.
demo-image: binaries
	./scripts/make-demo-image $(BUILD)/bin/orbit-mkimage $(BUILD)/demo.oci.tar

# install also puts the units of systemd-units/ in UNITDIR, with @BINDIR@ in
# them replaced by where orbit went (docs/units.md).
install: binaries cni-plugins
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(LIBEXECDIR)/cni
	install -m 0755 $(BUILD)/bin/orbit $(DESTDIR)$(BINDIR)/orbit
	install -m 0755 $(BUILD)/bin/orbit-cri $(BUILD)/bin/orbit-update $(BUILD)/bin/orbit-slot \
	  $(BUILD)/bin/orbit-rebootmgr $(BUILD)/bin/orbit-rebootctl $(BUILD)/bin/orbit-provision $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/libexec/orbit-stage1 $(BUILD)/libexec/orbit-pod-init $(DESTDIR)$(LIBEXECDIR)/
	install -m 0755 $(BUILD)/cni/* $(DESTDIR)$(LIBEXECDIR)/cni/
	install -d $(DESTDIR)$(UNITDIR)
	for u in systemd-units/*.service systemd-units/*.timer systemd-units/*.socket; do \
	  sed 's|@BINDIR@|$(BINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done

deps:
	./scripts/install-deps

# The API's generated Go code (api/v1alpha/*.pb.go) is committed: the build
# and CI need no protoc. After changing api/v1alpha/api.proto, regenerate
# with Debian's protoc (apt-get install protobuf-compiler) and the pinned
# plugins, installed here only for this.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	@mkdir -p $(BUILD)/protoc-bin
	GOBIN=$(BUILD)/protoc-bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(BUILD)/protoc-bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(BUILD)/protoc-bin:$$PATH protoc --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative api/v1alpha/api.proto

demo: all
	./scripts/demo $(BUILD)

unit:
	$(GO) test ./...

# Each fuzz target runs briefly; findings land in testdata/fuzz and stay.
# Budgets are counts, not durations: go1.26's coordinator can report its own
# -fuzztime deadline as a failure (go.dev/issue/75804), which a loaded CI
# machine hits. Minimizing a new input is capped for the same reason.
FUZZTIME ?= 20000x
FUZZMIN ?= 500x
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzApply -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./image/unpack/
	$(GO) test -run='^$$' -fuzz=FuzzOpenLayout -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./image/source/
	$(GO) test -run='^$$' -fuzz=FuzzRead -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./image/aci/
	$(GO) test -run='^$$' -fuzz=FuzzManifest -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./pod/
	$(GO) test -run='^$$' -fuzz=FuzzVolumeAndMountFlags -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./stage0/
	$(GO) test -run='^$$' -fuzz=FuzzParsePort -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./network/
	$(GO) test -run='^$$' -fuzz=FuzzRead -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) ./os/update/payload/

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags functional ./functional-tests/...
	staticcheck ./...
	staticcheck -tags functional ./functional-tests/...
	cd tools/flannel && $(GO) vet ./... && staticcheck ./...

functional: all test-tools
	ORBIT_BUILD=$(BUILD) ORBIT_VM_CACHE=$(VM_CACHE) ORBIT_OS_CACHE=$(OS_CACHE) $(GO) test -tags functional -count=1 -v -timeout 80m ./functional-tests/...

check: lint unit fuzz functional

# The VM test harness (docs/vm.md): a Debian image with systemd and this
# build of orbit, cached in VM_CACHE. The first build runs debootstrap
# (minutes); later ones reuse it. vm-test is part of `make functional` too.
VM_CACHE ?= /var/cache/orbit-vm
VM_FILES := -file /opt/orbit-test/demo.oci.tar=$(BUILD)/demo.oci.tar

vm-image: binaries demo-image
	$(BUILD)/bin/orbit-vm image -cache $(VM_CACHE) -build $(BUILD) $(VM_FILES)

vm-test: binaries demo-image
	ORBIT_BUILD=$(BUILD) ORBIT_VM_CACHE=$(VM_CACHE) $(GO) test -tags functional -count=1 -v -timeout 30m -run 'InVM|VMHarness' ./functional-tests/

vm-boot: binaries demo-image
	$(BUILD)/bin/orbit-vm boot -cache $(VM_CACHE) -build $(BUILD) $(VM_FILES)

# The host OS image (docs/os.md): a GPT disk with A/B /usr slots, from
# Debian packages (debootstrap cached in OS_CACHE) and this build, with
# flanneld from the test tools. os-boot boots it under QEMU with UEFI;
# log in as root, password orbit.
OS_CACHE ?= /var/cache/orbit-os
OS_VERSION ?= 0.1.0

os-image: all test-tools
	$(BUILD)/bin/orbit-os image -cache $(OS_CACHE) -build $(BUILD) -version $(OS_VERSION)

os-boot: all test-tools
	$(BUILD)/bin/orbit-os boot -cache $(OS_CACHE) -build $(BUILD) -version $(OS_VERSION)

os-test: all test-tools
	ORBIT_BUILD=$(BUILD) ORBIT_OS_CACHE=$(OS_CACHE) $(GO) test -tags functional -count=1 -v -timeout 40m -run 'OSImage' ./functional-tests/

clean:
	rm -rf $(BUILD)
