using System.Runtime.Versioning;
using Microsoft.AspNetCore.Http;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// ca/install-node.sh against throwaway roots (<c>--root TEMP</c> with a fake etc/os-release), so
/// nothing on this machine is touched and the trust-store and systemctl commands are only printed.
/// The CA comes from a loopback stand-in for the proxy's <c>/ca.crt</c>, or from <c>--ca-file</c>.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class InstallNodeScriptTests(CaServerFixture ca) : IClassFixture<CaServerFixture>
{
    private const string Marker = "# Managed by MitmCache ca/install-node.sh";
    private const string DebianCa = "usr/local/share/ca-certificates/mitmcache.crt";
    private const string RhelCa = "etc/pki/ca-trust/source/anchors/mitmcache.crt";
    private const string Manifest = "etc/mitmcache/install-node.manifest";
    private const string DefaultNoProxy = "localhost,127.0.0.0/8,::1,.svc,.cluster.local";

    private static string Script => RepositoryFiles.Combine("ca", "install-node.sh");

    [Fact]
    public async Task Install_DebianRoot_WritesCaDropInsAndManifestExactly()
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--sha256", ca.Fingerprint);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(
        [
            "etc/", "etc/mitmcache/", "etc/mitmcache/install-node.manifest", "etc/os-release",
            "etc/systemd/", "etc/systemd/system/",
            "etc/systemd/system/containerd.service.d/", "etc/systemd/system/containerd.service.d/http-proxy.conf",
            "etc/systemd/system/crio.service.d/", "etc/systemd/system/crio.service.d/http-proxy.conf",
            "etc/systemd/system/docker.service.d/", "etc/systemd/system/docker.service.d/http-proxy.conf",
            "usr/", "usr/local/", "usr/local/share/", "usr/local/share/ca-certificates/", DebianCa,
        ], FileTree.Paths(root.Path));
        Assert.Equal(ca.CaPem, Read(root, DebianCa));
        var noProxy = $"{DefaultNoProxy},{ca.ProxyHost}";
        Assert.Equal(DropIn("containerd", ca.ProxyUrl, noProxy), Read(root, DropInPath("containerd")));
        Assert.Equal(DropIn("dockerd", ca.ProxyUrl, noProxy), Read(root, DropInPath("docker")));
        Assert.Equal(DropIn("CRI-O", ca.ProxyUrl, noProxy), Read(root, DropInPath("crio")));
        Assert.Equal($"""
            {Marker}: what 'install-node.sh --uninstall' removes.
            # Paths are relative to the root. Directories are those the script created.
            dir usr
            dir usr/local
            dir usr/local/share
            dir usr/local/share/ca-certificates
            file {DebianCa}
            dir etc/systemd
            dir etc/systemd/system
            dir etc/systemd/system/containerd.service.d
            file {DropInPath("containerd")}
            dir etc/systemd/system/docker.service.d
            file {DropInPath("docker")}
            dir etc/systemd/system/crio.service.d
            file {DropInPath("crio")}
            dir etc/mitmcache

            """, Read(root, Manifest));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            File.GetUnixFileMode(Path.Combine(root.Path, DropInPath("docker"))));
        Assert.Contains("not run (root is not /): update-ca-certificates", result.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("systemctl", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_SecondRun_ChangesNothing()
    {
        using var root = FakeRoot("debian");
        string[] args = ["--proxy", ca.ProxyUrl, "--root", root.Path, "--service-cidr", "10.96.0.0/12"];
        Assert.True((await RunAsync(args)).Succeeded);
        var before = FileTree.Snapshot(root.Path);

        var second = await RunAsync(args);

        Assert.True(second.Succeeded, second.ToString());
        Assert.Equal(before, FileTree.Snapshot(root.Path));
        var outcomes = second.StdOut.Split('\n').Where(l => l.Contains(": /", StringComparison.Ordinal) && !l.StartsWith("root:", StringComparison.Ordinal)).ToList();
        Assert.Equal(5, outcomes.Count); // the CA, three drop-ins, the manifest
        Assert.All(outcomes, line => Assert.StartsWith("unchanged: ", line, StringComparison.Ordinal));
        Assert.DoesNotContain("update-ca-certificates", second.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_DryRun_ChangesNothing()
    {
        using var root = FakeRoot("debian");
        var empty = FileTree.Snapshot(root.Path);

        var fresh = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--dry-run");

        Assert.True(fresh.Succeeded, fresh.ToString());
        Assert.Equal(empty, FileTree.Snapshot(root.Path));
        Assert.Contains($"would be created: {Path.Combine(root.Path, DropInPath("containerd"))}", fresh.StdOut, StringComparison.Ordinal);
        Assert.Contains($"    | Environment=\"HTTPS_PROXY={ca.ProxyUrl}\"", fresh.StdOut, StringComparison.Ordinal);
        Assert.Contains("would run: update-ca-certificates", fresh.StdOut, StringComparison.Ordinal);

        Assert.True((await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path)).Succeeded);
        var installed = FileTree.Snapshot(root.Path);
        var changedProxy = await RunAsync("--proxy", "http://10.1.2.3:3128", "--ca-file", ca.Pki.CaCertPath, "--root", root.Path, "--dry-run", "--restart");

        Assert.True(changedProxy.Succeeded, changedProxy.ToString());
        Assert.Equal(installed, FileTree.Snapshot(root.Path));
        Assert.Contains($"would be updated: {Path.Combine(root.Path, DropInPath("crio"))}", changedProxy.StdOut, StringComparison.Ordinal);
        Assert.Contains($"unchanged: {Path.Combine(root.Path, DebianCa)}", changedProxy.StdOut, StringComparison.Ordinal);
        Assert.Contains("would run: systemctl try-restart containerd.service docker.service crio.service", changedProxy.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Uninstall_AfterInstall_RestoresTreeExactly()
    {
        using var root = FakeRoot("debian");
        // Things that were there before and must survive: a directory the script also uses, and a neighbour in it.
        WriteFile(root, "etc/systemd/system/docker.service.d/10-mirror.conf", "[Service]\nEnvironment=\"FOO=bar\"\n");
        WriteFile(root, "usr/local/share/ca-certificates/corp.crt", ca.CaPem);
        var before = FileTree.Snapshot(root.Path, directoryTimes: false);
        Assert.True((await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path)).Succeeded);
        var installed = FileTree.Snapshot(root.Path);

        var dryRun = await RunAsync("--uninstall", "--root", root.Path, "--dry-run");
        Assert.True(dryRun.Succeeded, dryRun.ToString());
        Assert.Equal(installed, FileTree.Snapshot(root.Path));
        Assert.Contains("would run: update-ca-certificates --fresh", dryRun.StdOut, StringComparison.Ordinal);

        var uninstall = await RunAsync("--uninstall", "--root", root.Path);

        Assert.True(uninstall.Succeeded, uninstall.ToString());
        Assert.Equal(before, FileTree.Snapshot(root.Path, directoryTimes: false));
        Assert.Contains("not run (root is not /): update-ca-certificates --fresh", uninstall.StdOut, StringComparison.Ordinal);
        Assert.Contains($"removed: {root.Path}/etc/systemd/system/containerd.service.d/", uninstall.StdOut, StringComparison.Ordinal);

        var again = await RunAsync("--uninstall", "--root", root.Path);
        Assert.True(again.Succeeded, again.ToString());
        Assert.StartsWith("nothing to uninstall", again.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_Sha256Mismatch_FailsWithClearMessageAndWritesNothing()
    {
        using var root = FakeRoot("debian");
        var before = FileTree.Snapshot(root.Path);
        var wrong = string.Join(':', Enumerable.Repeat("AB", 32));

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--sha256", wrong);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"SHA-256 fingerprint mismatch for {ca.ProxyUrl}/ca.crt: expected {wrong}, got {ca.Fingerprint}", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", result.StdErr, StringComparison.Ordinal);
        Assert.Equal(before, FileTree.Snapshot(root.Path));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task Install_Sha256AnyCaseWithOrWithoutColons_Accepted(bool colons, bool upper)
    {
        using var root = FakeRoot("debian");
        var fingerprint = colons ? ca.Fingerprint : ca.Fingerprint.Replace(":", "", StringComparison.Ordinal);
        fingerprint = upper ? fingerprint : fingerprint.ToLowerInvariant();

        var result = await RunAsync("--proxy", "http://10.1.2.3:3128", "--ca-file", ca.Pki.CaCertPath, "--root", root.Path, "--sha256", fingerprint);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(ca.CaPem, Read(root, DebianCa));
        Assert.DoesNotContain("warning", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_WithoutSha256_WarnsAndPrintsFingerprint()
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("warning: no --sha256 given", result.StdErr, StringComparison.Ordinal);
        Assert.Contains(ca.Fingerprint, result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_RhelRoot_UsesAnchorsAndUpdateCaTrust()
    {
        using var root = FakeRoot("rhel");

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--runtime", "crio");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(ca.CaPem, Read(root, RhelCa));
        Assert.False(Directory.Exists(Path.Combine(root.Path, "usr")), "no Debian path on a RHEL root");
        Assert.Equal(DropIn("CRI-O", ca.ProxyUrl, $"{DefaultNoProxy},{ca.ProxyHost}"), Read(root, DropInPath("crio")));
        Assert.False(Directory.Exists(Path.Combine(root.Path, "etc/systemd/system/containerd.service.d")));
        Assert.Contains("not run (root is not /): update-ca-trust extract", result.StdOut, StringComparison.Ordinal);

        var uninstall = await RunAsync("--uninstall", "--root", root.Path);
        Assert.True(uninstall.Succeeded, uninstall.ToString());
        Assert.Equal(["etc/", "etc/os-release"], FileTree.Paths(root.Path));
        Assert.Contains("not run (root is not /): update-ca-trust extract", uninstall.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_NoOsRelease_AsksForOsFlag_ThenHonoursIt()
    {
        using var root = TempDir.Create("mitmcache-node-root");

        var unknown = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path);
        var forced = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--os", "rhel", "--runtime", "containerd");

        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("pass --os debian or --os rhel", unknown.StdErr, StringComparison.Ordinal);
        Assert.True(forced.Succeeded, forced.ToString());
        Assert.True(File.Exists(Path.Combine(root.Path, RhelCa)));
    }

    [Fact]
    public async Task Install_NetworkOptions_ComposeNoProxyInOrder()
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync("--proxy", "http://mitmcache.internal:3128", "--ca-file", ca.Pki.CaCertPath, "--root", root.Path,
            "--runtime", "containerd", "--service-cidr", "10.96.0.0/12", "--pod-cidr=10.244.0.0/16",
            "--no-proxy", "registry.corp, .corp.example", "--no-proxy", "10.96.0.0/12,192.168.0.0/16");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(
            DropIn("containerd", "http://mitmcache.internal:3128",
                $"{DefaultNoProxy},10.96.0.0/12,10.244.0.0/16,mitmcache.internal,registry.corp,.corp.example,192.168.0.0/16"),
            Read(root, DropInPath("containerd")));
        Assert.False(Directory.Exists(Path.Combine(root.Path, "etc/systemd/system/docker.service.d")));
    }

    [Fact]
    public async Task Install_RuntimeAll_WritesOnlyRuntimesWithUnits()
    {
        using var root = FakeRoot("debian");
        WriteFile(root, "usr/lib/systemd/system/containerd.service", "[Service]\nExecStart=/usr/bin/containerd\n");
        WriteFile(root, "etc/systemd/system/crio.service", "[Service]\nExecStart=/usr/bin/crio\n");

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("runtimes: containerd crio", result.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(root.Path, DropInPath("containerd"))));
        Assert.True(File.Exists(Path.Combine(root.Path, DropInPath("crio"))));
        Assert.False(Directory.Exists(Path.Combine(root.Path, "etc/systemd/system/docker.service.d")));
    }

    [Fact]
    public async Task Install_DestDirEnvironment_IsTheRoot()
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync(["--proxy", ca.ProxyUrl, "--runtime", "docker"], new Dictionary<string, string?> { ["DESTDIR"] = root.Path });

        Assert.True(result.Succeeded, result.ToString());
        Assert.True(File.Exists(Path.Combine(root.Path, DebianCa)));
        Assert.True(File.Exists(Path.Combine(root.Path, DropInPath("docker"))));
    }

    [Fact]
    public async Task Install_ProxyCredentials_DropInPrivateAndPercentEscaped()
    {
        using var root = FakeRoot("debian");
        var result = await RunAsync("--proxy", ca.ProxyUrl.Replace("http://", "http://node:p%40ss@", StringComparison.Ordinal),
            "--root", root.Path, "--runtime", "containerd", "--sha256", ca.Fingerprint);

        Assert.True(result.Succeeded, result.ToString());
        var expectedUrl = ca.ProxyUrl.Replace("http://", "http://node:p%%40ss@", StringComparison.Ordinal);
        Assert.Equal(DropIn("containerd", expectedUrl, $"{DefaultNoProxy},{ca.ProxyHost}"), Read(root, DropInPath("containerd")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(root.Path, DropInPath("containerd"))));
        Assert.Null(ca.LastAuthorization); // /ca.crt is public: the credentials stay in the drop-in
    }

    [Theory]
    [InlineData("garbage", "is not a PEM certificate")]
    [InlineData("key", "contains a private key")]
    [InlineData("two", "holds 2 certificates")]
    [InlineData("leaf", "is not a CA certificate")]
    [InlineData("broken", "is not a valid certificate")]
    public async Task Install_BadCaFile_FailsAndWritesNothing(string kind, string message)
    {
        using var root = FakeRoot("debian");
        var file = Path.Combine(root.Path, "..", $"{Path.GetFileName(root.Path)}-{kind}.pem");
        var (leafCert, _) = ca.Pki.IssueServer($"leaf-{Guid.NewGuid():N}", "leaf.test");
        await File.WriteAllTextAsync(file, kind switch
        {
            "garbage" => "<html>not found</html>\n",
            "key" => ca.CaPem + await File.ReadAllTextAsync(ca.Pki.CaKeyPath),
            "two" => ca.CaPem + ca.CaPem,
            "leaf" => await File.ReadAllTextAsync(leafCert),
            _ => "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        });
        var before = FileTree.Snapshot(root.Path);
        try
        {
            var result = await RunAsync("--proxy", "http://10.1.2.3:3128", "--ca-file", file, "--root", root.Path);

            Assert.Equal(1, result.ExitCode);
            Assert.Contains(message, result.StdErr, StringComparison.Ordinal);
            Assert.Equal(before, FileTree.Snapshot(root.Path));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Install_ForeignDropIn_RefusesAndWritesNothing()
    {
        using var root = FakeRoot("debian");
        WriteFile(root, DropInPath("docker"), "[Service]\nEnvironment=\"HTTPS_PROXY=http://corp:8080\"\n");
        var before = FileTree.Snapshot(root.Path);

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{Path.Combine(root.Path, DropInPath("docker"))} exists and was not written by install-node.sh", result.StdErr, StringComparison.Ordinal);
        Assert.Equal(before, FileTree.Snapshot(root.Path));
    }

    [Fact]
    public async Task Install_OtherDropInSettingProxy_Warns()
    {
        using var root = FakeRoot("debian");
        WriteFile(root, "etc/systemd/system/containerd.service.d/zz-proxy.conf", "[Service]\nEnvironment=\"NO_PROXY=x\"\n");

        var result = await RunAsync("--proxy", ca.ProxyUrl, "--root", root.Path, "--runtime", "containerd");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("zz-proxy.conf also sets proxy variables", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_DamagedDownload_HeaderDisagrees_Fails()
    {
        using var root = FakeRoot("debian");
        var (app, port) = await LoopbackKestrel.StartAsync(null, 0, async context =>
        {
            context.Response.Headers["X-Certificate-SHA256"] = string.Join(':', Enumerable.Repeat("00", 32));
            await context.Response.WriteAsync(ca.CaPem);
        }, CancellationToken.None);
        await using var _ = app;

        var result = await RunAsync("--proxy", $"http://127.0.0.1:{port}", "--root", root.Path);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("is damaged: X-Certificate-SHA256 says 00:00", result.StdErr, StringComparison.Ordinal);
        Assert.Equal(["etc/", "etc/os-release"], FileTree.Paths(root.Path));
    }

    [Fact]
    public async Task Install_ProxyUnreachable_FailsClearly()
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync("--proxy", $"http://127.0.0.1:{FreePort.Get()}", "--root", root.Path);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("could not download http://127.0.0.1:", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("is MitmCache running and reachable", result.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "--proxy http://HOST:PORT is required")]
    [InlineData("--proxy https://10.0.0.5:3128", "--proxy must be http://HOST:PORT")]
    [InlineData("--proxy http://10.0.0.5", "expected http://HOST:PORT")]
    [InlineData("--proxy http://10.0.0.5:3128/path", "--proxy takes no path")]
    [InlineData("--proxy http://10.0.0.5:3128 --runtime podman", "--runtime 'podman'")]
    [InlineData("--proxy http://10.0.0.5:3128 --sha256 12:34", "--sha256 must be 64 hex digits")]
    [InlineData("--proxy http://10.0.0.5:3128 --os arch", "--os 'arch'")]
    [InlineData("--proxy http://10.0.0.5:3128 --no-proxy a;b", "NO_PROXY entry 'a;b'")]
    [InlineData("--proxy", "--proxy needs a value")]
    [InlineData("--frobnicate", "unknown argument '--frobnicate'")]
    public async Task BadUsage_ExitsTwoWithMessage(string args, string message)
    {
        using var root = FakeRoot("debian");

        var result = await RunAsync(["--root", root.Path, .. args.Split(' ', StringSplitOptions.RemoveEmptyEntries)]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.StdErr, StringComparison.Ordinal);
        Assert.Contains("Try 'install-node.sh --help'", result.StdErr, StringComparison.Ordinal);
        Assert.Equal(["etc/", "etc/os-release"], FileTree.Paths(root.Path));
    }

    [Fact]
    public async Task Help_PrintsUsage()
    {
        var result = await RunAsync("--help");

        Assert.True(result.Succeeded, result.ToString());
        Assert.StartsWith("Usage: install-node.sh --proxy http://HOST:PORT [options]", result.StdOut, StringComparison.Ordinal);
        foreach (var option in new[] { "--runtime", "--no-proxy", "--service-cidr", "--pod-cidr", "--ca-file", "--sha256", "--os", "--restart", "--dry-run", "--uninstall", "--root", "DESTDIR" })
        {
            Assert.Contains(option, result.StdOut, StringComparison.Ordinal);
        }
    }

    [RequiresExecutableFact("/usr/bin/shellcheck", "shellcheck")]
    public async Task Shellcheck_CaScripts_Clean()
    {
        var scripts = Directory.GetFiles(RepositoryFiles.Combine("ca"), "*.sh");
        Assert.NotEmpty(scripts);

        var result = await ProcessRunner.RunAsync("/usr/bin/shellcheck", ["--severity=style", "--shell=bash", .. scripts]);

        Assert.True(result.Succeeded, result.ToString());
    }

    private Task<ProcessResult> RunAsync(params string[] args) => RunAsync(args, null);

    private static Task<ProcessResult> RunAsync(string[] args, IDictionary<string, string?>? env)
    {
        // DESTDIR is a root too: never inherit one by accident.
        var environment = new Dictionary<string, string?> { ["DESTDIR"] = null };
        foreach (var (name, value) in env ?? new Dictionary<string, string?>())
        {
            environment[name] = value;
        }

        return ProcessRunner.RunAsync(Script, args, environment, TimeSpan.FromSeconds(60));
    }

    private static TempDir FakeRoot(string family)
    {
        var root = TempDir.Create("mitmcache-node-root");
        WriteFile(root, "etc/os-release", family == "rhel"
            ? "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n"
            : "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
        return root;
    }

    private static void WriteFile(TempDir root, string relative, string content)
    {
        var path = Path.Combine(root.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    private static string Read(TempDir root, string relative) => File.ReadAllText(Path.Combine(root.Path, relative));

    private static string DropInPath(string runtime) => $"etc/systemd/system/{runtime}.service.d/http-proxy.conf";

    private static string DropIn(string daemon, string proxy, string noProxy) => $"""
        {Marker}
        # Re-run the script to change this file, or run it with --uninstall to remove it.
        # Pulls go through MitmCache; its root CA is in the system trust store, which {daemon} reads.
        [Service]
        Environment="HTTPS_PROXY={proxy}"
        Environment="HTTP_PROXY={proxy}"
        Environment="NO_PROXY={noProxy}"

        """;
}
