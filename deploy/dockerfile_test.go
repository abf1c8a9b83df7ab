package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository root: the build context of the image and the
// directory of docker-compose.yml. Tests run in deploy/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from instruction
	name string // the AS name, lower case
	body []instruction
}

type dockerfile struct {
	global []instruction // before the first FROM (ARGs)
	stages []stage
}

// parseDockerfile reads the subset of the Dockerfile syntax we use: line
// continuations with a trailing backslash, comment lines (also inside a
// continuation, as Docker does), one instruction per logical line.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var df dockerfile
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, more := strings.CutSuffix(line, `\`); more {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			st := stage{from: in}
			if f := strings.Fields(in.args); len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				st.name = strings.ToLower(f[len(f)-1])
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			df.global = append(df.global, in)
		} else {
			last := &df.stages[len(df.stages)-1]
			last.body = append(last.body, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a line continuation", path)
	}
	return df
}

// args returns a stage's (or the global) ARG defaults.
func argDefaults(ins []instruction) map[string]string {
	out := map[string]string{}
	for _, in := range ins {
		if in.cmd != "ARG" {
			continue
		}
		k, v, _ := strings.Cut(in.args, "=")
		out[k] = strings.Trim(v, `"`)
	}
	return out
}

// envs returns a stage's ENV settings (KEY=VALUE form only).
func envs(t *testing.T, ins []instruction) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, in := range ins {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("line %d: ENV %q: use the KEY=VALUE form", in.line, in.args)
			}
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

func (df dockerfile) stage(t *testing.T, name string) stage {
	t.Helper()
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no stage named %q", name)
	return stage{}
}

var runOptions = regexp.MustCompile(`^(--[a-z-]+=\S+\s+)+`)

// runCommands returns a stage's RUN commands as shell text, without the
// RUN options (--mount=..., --network=...), and the options apart.
func runCommands(st stage) (cmds []string, opts []string) {
	for _, in := range st.body {
		if in.cmd != "RUN" {
			continue
		}
		o := runOptions.FindString(in.args)
		opts = append(opts, strings.Fields(o)...)
		cmds = append(cmds, strings.TrimSpace(in.args[len(o):]))
	}
	return cmds, opts
}

const dockerfilePath = "Dockerfile"

// The image's shape: Go toolchain of go.mod, distroless non-root runtime,
// no ENTRYPOINT, the version as a label, cache mounts, static and trimmed
// builds.
func TestDockerfileShape(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	df := parseDockerfile(t, dockerfilePath)
	if len(df.stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, runtime)", len(df.stages))
	}
	build := df.stage(t, "build")

	// The builder's Go is go.mod's.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	goVersion := argDefaults(df.global)["GO_VERSION"]
	if goVersion != string(m[1]) {
		t.Errorf("ARG GO_VERSION=%s, go.mod says go %s", goVersion, m[1])
	}
	if !strings.Contains(build.from.args, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s, want golang:${GO_VERSION}", build.from.args)
	}

	_, opts := runCommands(build)
	for _, want := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build"} {
		if !slices.Contains(opts, want) {
			t.Errorf("no RUN of the build stage has %s", want)
		}
	}
	env := envs(t, build.body)
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("build stage ENV CGO_ENABLED=%q, want 0 (static binaries for distroless static)", env["CGO_ENABLED"])
	}

	rt := df.stages[len(df.stages)-1]
	if got := strings.Fields(rt.from.args)[0]; got != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("runtime FROM %s, want gcr.io/distroless/static-debian12:nonroot", got)
	}
	var user, copyFrom string
	var labels []string
	for _, in := range rt.body {
		switch in.cmd {
		case "ENTRYPOINT":
			t.Errorf("line %d: ENTRYPOINT: the image has none, so compose and Kubernetes pick the binary with command", in.line)
		case "USER":
			user = in.args
		case "LABEL":
			labels = append(labels, in.args)
		case "COPY":
			if strings.HasPrefix(in.args, "--from=build ") {
				copyFrom = in.args
			}
		}
	}
	// Numeric, so Kubernetes' runAsNonRoot can check it.
	if !regexp.MustCompile(`^[1-9][0-9]*:[0-9]+$`).MatchString(user) {
		t.Errorf("USER %q, want a numeric non-root uid:gid", user)
	}
	if !strings.Contains(strings.Join(labels, " "), `org.opencontainers.image.version="${VERSION}"`) {
		t.Errorf("no org.opencontainers.image.version label from ${VERSION}: %q", labels)
	}
	if _, ok := argDefaults(rt.body)["VERSION"]; !ok {
		t.Error("runtime stage has no ARG VERSION: its label would be empty")
	}
	// The runtime copies what the build stage wrote to $OUT.
	if want := "--from=build " + env["OUT"] + "/ /usr/local/bin/"; copyFrom != want {
		t.Errorf("COPY %q, want %q", copyFrom, want)
	}

	// .env (secrets) and .git never enter the build context.
	ignore, err := os.ReadFile(dockerfilePath + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".env", ".git", "data/"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Dockerfile.dockerignore does not exclude %s", want)
		}
	}
}

// ignoreRule is one line of a .dockerignore file.
type ignoreRule struct {
	pattern string
	negate  bool
}

func dockerignore(t *testing.T, path string) []ignoreRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, p
		}
		r.pattern = filepath.Clean(line)
		rules = append(rules, r)
	}
	return rules
}

// ignored applies the rules as Docker does: a pattern matches a path or any
// of its parent directories, and the last matching rule wins.
func ignored(rel string, rules []ignoreRule) bool {
	out := false
	for _, r := range rules {
		for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
			if ok, _ := filepath.Match(r.pattern, p); ok {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// copyContext copies src (relative to the build context root, "." for all
// of it) to dest as COPY would, skipping what the rules ignore.
func copyContext(t *testing.T, root, src, dest string, rules []ignoreRule) {
	t.Helper()
	base := filepath.Join(root, src)
	info, err := os.Stat(base)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if !info.IsDir() {
		if strings.HasSuffix(dest, string(filepath.Separator)) || isDir(dest) {
			dest = filepath.Join(dest, filepath.Base(src))
		}
		copyFile(t, base, dest)
		return
	}
	err = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel != "." && ignored(rel, rules) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		inner, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		copyFile(t, p, filepath.Join(dest, inner))
		return nil
	})
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageBinaries returns the binaries the build stage writes, from the
// package paths of its go build command.
func imageBinaries(t *testing.T) []string {
	t.Helper()
	cmds, _ := runCommands(parseDockerfile(t, dockerfilePath).stage(t, "build"))
	var bins []string
	for _, c := range cmds {
		for _, f := range strings.Fields(c) {
			if strings.HasPrefix(f, "./") {
				bins = append(bins, filepath.Base(f))
			}
		}
	}
	return bins
}

// The build stage, replayed here with the local toolchain: its WORKDIR,
// COPY and RUN instructions in order, in a temporary directory standing for
// the image's file system, with the build context filtered by
// Dockerfile.dockerignore; the RUN commands get the same shell text, the
// stage's ARG defaults and ENV, and two substitutions (the output
// directory, the version). A build step that breaks fails here without
// Docker, and the repository's go.sum is never touched.
func TestDockerfileBuildStageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	t.Parallel()
	root := repoRoot(t)
	df := parseDockerfile(t, dockerfilePath)
	build := df.stage(t, "build")
	if cmds, _ := runCommands(build); len(cmds) == 0 {
		t.Fatal("the build stage has no RUN")
	}

	out := t.TempDir()
	const version = "v0.0.0-deploytest"
	vars := map[string]string{}
	for k, v := range argDefaults(build.body) {
		vars[k] = v
	}
	vars["VERSION"] = version
	vars["TARGETOS"], vars["TARGETARCH"] = "", "" // BuildKit's; empty is the host's
	for k, v := range envs(t, build.body) {
		vars[k] = v
	}
	if vars["OUT"] == "" {
		t.Fatal("the build stage sets no OUT: the test cannot redirect the output")
	}
	vars["OUT"] = out
	env := os.Environ()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}

	image := t.TempDir() // the build stage's "/"
	ignore := dockerignore(t, dockerfilePath+".dockerignore")
	workdir := image
	for _, in := range build.body {
		switch in.cmd {
		case "WORKDIR":
			workdir = filepath.Join(image, in.args)
			if err := os.MkdirAll(workdir, 0o755); err != nil {
				t.Fatal(err)
			}
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) < 2 || strings.HasPrefix(f[0], "--") {
				t.Fatalf("line %d: COPY %s: only COPY SRC... DEST is replayed", in.line, in.args)
			}
			dest := f[len(f)-1]
			if filepath.IsAbs(dest) {
				dest = filepath.Join(image, dest)
			} else {
				dest = filepath.Join(workdir, dest)
			}
			for _, src := range f[:len(f)-1] {
				copyContext(t, root, src, dest, ignore)
			}
		case "RUN":
			o := runOptions.FindString(in.args)
			c := strings.TrimSpace(in.args[len(o):])
			cmd := exec.Command("sh", "-c", c)
			cmd.Dir = workdir
			cmd.Env = env
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("line %d: RUN %s\n%v\n%s", in.line, c, err, b)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(workdir, ".env")); err == nil {
		t.Error(".env was copied into the build stage")
	}

	// Every command of the repository is in the image, and the healthcheck.
	cmdDirs, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"healthcheck"}
	for _, d := range cmdDirs {
		if d.IsDir() {
			want = append(want, d.Name())
		}
	}
	for _, bin := range want {
		path := filepath.Join(out, bin)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("the build stage did not build %s: %v", bin, err)
			continue
		}
		info, err := exec.Command("go", "version", "-m", path).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m %s: %v\n%s", bin, err, info)
		}
		for _, setting := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
			if !strings.Contains(string(info), setting) {
				t.Errorf("%s was not built with %s:\n%s", bin, setting, info)
			}
		}
		if bin == "healthcheck" {
			continue // no version to stamp
		}
		// -trimpath keeps -ldflags out of the build info: look for the
		// stamped string itself.
		if b, err := os.ReadFile(path); err != nil || !bytes.Contains(b, []byte(version)) {
			t.Errorf("%s does not hold the version %s (-X main.version): %v", bin, version, err)
		}
	}

	// The version is stamped where users see it.
	got, err := exec.Command(filepath.Join(out, "producer"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(got), version) {
		t.Errorf("producer --version = %q (%v), want it to say %s", got, err, version)
	}
}
