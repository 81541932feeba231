# homelab-autoscaler. `make test` runs every test; `make demo` runs the main job.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

K8S_VERSION  ?= 1.37.2
KWOK_VERSION ?= 0.8.0
CACHE_DIR    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/homelab-autoscaler
# The control-plane binaries live outside the work tree, keyed by version, so every clone on a
# machine shares one build.
TOOLS_BIN    ?= $(CACHE_DIR)/k8s-v$(K8S_VERSION)-kwok-v$(KWOK_VERSION)
GO           ?= go
CONTROLLER_GEN := $(GO) tool -modfile=hack/tools/codegen/go.mod controller-gen
GOLANGCI_LINT  := $(GO) tool -modfile=hack/tools/lint/go.mod golangci-lint
TEST_FLAGS   ?= -race -count=1 -timeout 20m
# Time per fuzz target: FUZZTIME for `make fuzz`, FUZZTIME_SHORT for the run in `make test`.
FUZZTIME       ?= 1m
FUZZTIME_SHORT ?= 3s
BINARIES     := homelab-autoscaler homelab-agent homelab-sim homelabctl
# Fleet sizes and repetitions of `make bench`, and the sizes at which it profiles the manager
# (its CPU and heap at rest and during a burst, into docs/performance/profiles/).
BENCH_SIZES         ?= 10,100,1000,5000,10000
BENCH_REPS          ?= 3
BENCH_PROFILE_SIZES ?= 5000

export KUBEBUILDER_ASSETS := $(TOOLS_BIN)

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver, scheduler, controller-manager, kubectl and kwok into the cache.
	@K8S_VERSION=$(K8S_VERSION) KWOK_VERSION=$(KWOK_VERSION) TOOLS_BIN=$(TOOLS_BIN) hack/build-controlplane.sh

.PHONY: generate
generate: ## Generate deepcopy code and the externalgrpc protocol code.
	$(CONTROLLER_GEN) object:headerFile="" paths=./api/...
	hack/gen-proto.sh

.PHONY: manifests
manifests: ## Generate CRDs into config/crd/bases and the manager's RBAC into config/rbac (cluster-wide) and config/rbac/namespaced, and the reference in docs/configuration.md.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=homelab-autoscaler-manager paths=./internal/rbac/cluster output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=homelab-autoscaler-manager-namespaced paths=./internal/rbac/namespaced output:rbac:artifacts:config=config/rbac/namespaced
	$(GO) run ./hack/gendocs

.PHONY: verify-generated
verify-generated: ## Check that generated code, manifests and protocol code are up to date.
	@hack/verify-generated.sh
	@hack/verify-proto.sh
	@hack/sync-chart.sh --verify

.PHONY: chart-sync
chart-sync: ## Copy the CRDs, generated roles, alerts and dashboard from config/ into the Helm chart.
	@hack/sync-chart.sh

.PHONY: build
build: ## Build the binaries into bin/.
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: build-cross
build-cross: ## Build every binary, static and stripped as a release does, for linux/amd64 and linux/arm64 into bin/linux-ARCH/.
	@for arch in amd64 arm64; do \
		mkdir -p bin/linux-$$arch; \
		echo "build-cross: linux/$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags="-s -w" -o bin/linux-$$arch/ $(addprefix ./cmd/,$(BINARIES)); \
	done

# Part of make test: every binary must build for ARM (Raspberry Pi, ARM mini PCs). Without the
# release's -trimpath and stripping, so it shares the build cache with later runs of itself.
.PHONY: build-arm64
build-arm64: ## Build every binary for linux/arm64 into bin/linux-arm64/ (part of make test).
	@mkdir -p bin/linux-arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o bin/linux-arm64/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt, go vet, golangci-lint and actionlint.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	$(GO) tool -modfile=hack/tools/actionlint/go.mod actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

.PHONY: lint-deploy
lint-deploy: controlplane ## helm lint and template of the chart (default and ci/ values), kubectl kustomize of every overlay, PromQL parse.
	@TOOLS_BIN=$(TOOLS_BIN) GO=$(GO) hack/lint-deploy.sh

.PHONY: test-deps
test-deps: ## Install the Debian packages whose programs the power-driver tests run as real peers.
	@hack/install-test-deps.sh

.PHONY: test
test: test-deps controlplane verify-generated lint lint-deploy build-arm64 ## Build what the tests need, check generated files, lint code and deployment artifacts, run every test with -race.
	@start=$$(date +%s); \
	$(GO) test $(TEST_FLAGS) ./...; \
	echo "tests: done after $$(( $$(date +%s) - start ))s"
	@$(MAKE) --no-print-directory fuzz-short

.PHONY: fuzz
fuzz: controlplane ## Run each fuzz target for FUZZTIME (e.g. make fuzz FUZZTIME=5m).
	@GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: fuzz-short
fuzz-short: controlplane ## Run each fuzz target for FUZZTIME_SHORT (part of make test).
	@GO=$(GO) FUZZTIME=$(FUZZTIME_SHORT) FUZZCACHE=fresh hack/fuzz.sh

# The soak's length, and the bound on the whole run (raise it with a longer soak).
SOAK_DURATION ?= 30m
SOAK_TIMEOUT  ?= 3h

.PHONY: soak
soak: controlplane ## The fault harness for SOAK_DURATION (default 30m): kills, apiserver restarts, BMC faults, power cuts, button presses and hung kubelets; prints a summary.
	$(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestFaults$$/^Soak$$' -v ./internal/testing/faults -soak=$(SOAK_DURATION)

.PHONY: bench
bench: controlplane ## Measure the manager process at each fleet size and write docs/performance.md (quick: BENCH_SIZES=10,100 BENCH_REPS=1).
	$(GO) run ./hack/benchreport -sizes '$(BENCH_SIZES)' -reps '$(BENCH_REPS)' -profile-sizes '$(BENCH_PROFILE_SIZES)'

.PHONY: bench-report
bench-report: ## Rewrite docs/performance.md and its charts from docs/performance/results.json without measuring.
	$(GO) run ./hack/benchreport -render docs/performance/results.json

.PHONY: bench-go
bench-go: controlplane ## Run the packages' Go benchmarks against the real control plane (the fleet benchmark is make bench).
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 $$($(GO) list ./... | grep -v /internal/testing/perf$$)

.PHONY: demo
demo: controlplane build ## Local control plane + manager + four machines, a scripted power-on/off.
	@TOOLS_BIN=$(TOOLS_BIN) K8S_VERSION=$(K8S_VERSION) hack/demo.sh

.PHONY: energy-picture
energy-picture: controlplane build ## Regenerate docs/energy-timeline.svg and docs/energy-example.txt from a real run of the manager and homelab-sim (about 3 minutes).
	@TOOLS_BIN=$(TOOLS_BIN) K8S_VERSION=$(K8S_VERSION) hack/energy-picture.sh

.PHONY: dashboard-screenshot
dashboard-screenshot: controlplane build ## Regenerate docs/dashboard.png: homelabctl dashboard on a real run of the manager and homelab-sim, pictured with headless Chromium (about a minute).
	@TOOLS_BIN=$(TOOLS_BIN) K8S_VERSION=$(K8S_VERSION) GO=$(GO) hack/dashboard-screenshot.sh

.PHONY: clean
clean: ## Remove build output (not the control-plane cache).
	rm -rf bin
