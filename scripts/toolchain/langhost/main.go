// Command pulumi-language-python is a minimal Python language host for the e2e suite.
//
// The upstream host lives in its own Go module (sdk/python/cmd/pulumi-language-python),
// which the Go module proxy available here does not serve, and the pulumi Python wheel
// does not ship the exec shim either. This host implements the part of the
// LanguageRuntime gRPC service that `pulumi preview/up/destroy` use: it reports the
// resource plugins the virtualenv's pulumi packages declare, and runs the program with
// the virtualenv's python through shim.py (embedded below).
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is what GetPluginInfo reports; the toolchain script stamps the CLI's version.
var version = "3.274.1"

//go:embed shim.py
var shim string

// bailExitCode is the shim's exit code after it already reported the error to the engine.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
}

func main() {
	// The engine passes its own gRPC address as the only positional argument; accept and
	// ignore the upstream host's flags so either calling convention works.
	flag.String("tracing", "", "ignored")
	flag.String("root", "", "ignored")
	flag.String("virtualenv", "", "ignored")
	flag.Bool("logtostderr", false, "ignored")
	flag.Int("v", 0, "ignored")
	flag.Parse()
	h := &host{engine: flag.Arg(0)}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engine = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := pluginDeps(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out := &pulumirpc.GetRequiredPluginsResponse{}
	for _, d := range deps {
		out.Plugins = append(out.Plugins, &pulumirpc.PluginDependency{Name: d.Name, Kind: "resource", Version: d.Version, Server: d.Server})
	}
	return out, nil
}

func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := pluginDeps(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out := &pulumirpc.GetRequiredPackagesResponse{}
	for _, d := range deps {
		out.Packages = append(out.Packages, &pulumirpc.PackageDependency{Name: d.Name, Kind: "resource", Version: d.Version, Server: d.Server})
	}
	return out, nil
}

func (h *host) InstallDependencies(*pulumirpc.InstallDependenciesRequest, grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	return nil // the e2e suite points the project at an existing virtualenv
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	return &pulumirpc.AboutResponse{Executable: "python"}, nil
}

func (h *host) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	cfg, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args := []string{"-u", "-c", shim,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engine,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--organization", req.GetOrganization(),
		"--root", req.GetInfo().GetRootDirectory(),
		"--pwd", req.GetPwd(),
		"--dry-run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
		program}
	args = append(args, req.GetArgs()...)

	python, env := pythonFor(req.GetInfo())
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(env, "PULUMI_CONFIG="+string(cfg), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not run python: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// virtualenv resolves runtime.options.virtualenv (Pulumi.yaml) against the project root.
func virtualenv(info *pulumirpc.ProgramInfo) string {
	opt := info.GetOptions().GetFields()["virtualenv"].GetStringValue()
	if opt == "" {
		opt = os.Getenv("PULUMI_PYTHON_VIRTUALENV")
	}
	if opt == "" || filepath.IsAbs(opt) {
		return opt
	}
	return filepath.Join(info.GetRootDirectory(), opt)
}

// pythonFor picks the virtualenv's interpreter (or python3) and the environment to run it in.
func pythonFor(info *pulumirpc.ProgramInfo) (string, []string) {
	env := os.Environ()
	venv := virtualenv(info)
	if venv == "" {
		return "python3", env
	}
	bin := filepath.Join(venv, "bin")
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "VIRTUAL_ENV=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "VIRTUAL_ENV="+venv, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return filepath.Join(bin, "python"), out
}

type pluginJSON struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// pluginDeps reads the pulumi-plugin.json files that provider SDK packages install.
func pluginDeps(info *pulumirpc.ProgramInfo) ([]pluginJSON, error) {
	venv := virtualenv(info)
	if venv == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages", "*", "pulumi-plugin.json"))
	if err != nil {
		return nil, err
	}
	var deps []pluginJSON
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var p pluginJSON
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if !p.Resource || p.Name == "" {
			continue
		}
		if p.Version != "" && !strings.HasPrefix(p.Version, "v") {
			p.Version = "v" + p.Version
		}
		deps = append(deps, p)
	}
	return deps, nil
}
