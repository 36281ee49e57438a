using System.Runtime.Versioning;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// ca/install-node.sh with the root at <c>/</c>, where it really runs update-ca-certificates, but
/// inside <c>unshare --mount</c> with copies of /etc and /usr/local/share/ca-certificates bound
/// over the real ones, so the machine's trust store and units are never touched. Debian only.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class InstallNodeLiveRootTests(CaServerFixture ca) : IClassFixture<CaServerFixture>
{
    private const string LocalCaDir = "/usr/local/share/ca-certificates";
    private const string RealManifest = "/etc/mitmcache/install-node.manifest";

    [RequiresExecutableFact("/usr/sbin/update-ca-certificates", "ca-certificates", Root = true)]
    public async Task LiveRoot_InstallRefreshesSystemBundle_UninstallTakesItOut()
    {
        var realManifestBefore = File.Exists(RealManifest);
        using var dir = TempDir.Create("mitmcache-node-live");
        Assert.True(Directory.Exists(LocalCaDir), $"{LocalCaDir} must exist to be bound over");
        var copy = await ProcessRunner.RunAsync("/bin/sh", ["-c", "cp -a /etc \"$0/etc\" && cp -a \"$1\" \"$0/local-ca\"", dir.Path, LocalCaDir]);
        Assert.True(copy.Succeeded, copy.ToString());
        var configDirBefore = Directory.Exists(dir.Combine("etc", "mitmcache")); // true on a host that runs MitmCache itself
        var bundle = dir.Combine("etc", "ssl", "certs", "ca-certificates.crt");
        var body = string.Concat(ca.CaPem.Split('\n').Where(line => line.Length > 0 && !line.StartsWith("-----", StringComparison.Ordinal)));
        var (leaf, _) = ca.Pki.IssueServer($"live-{Guid.NewGuid():N}", "registry-1.docker.io");
        string[] install = ["--proxy", ca.ProxyUrl, "--sha256", ca.Fingerprint, "--runtime", "containerd"];

        var first = await RunInPrivateRootAsync(dir, install);

        Assert.True(first.Succeeded, first.ToString());
        Assert.Contains("created: /usr/local/share/ca-certificates/mitmcache.crt", first.StdOut, StringComparison.Ordinal);
        Assert.Contains("running: update-ca-certificates", first.StdOut, StringComparison.Ordinal);
        Assert.Contains("to apply: systemctl daemon-reload && systemctl restart containerd", first.StdOut, StringComparison.Ordinal);
        Assert.Contains(body, Unwrapped(bundle), StringComparison.Ordinal);
        Assert.Equal($"{LocalCaDir}/mitmcache.crt", new FileInfo(dir.Combine("etc", "ssl", "certs", "mitmcache.pem")).LinkTarget);
        Assert.True(File.Exists(dir.Combine("etc", "systemd", "system", "containerd.service.d", "http-proxy.conf")));
        var verify = await ProcessRunner.RunAsync("/usr/bin/openssl", ["verify", "-CAfile", bundle, leaf]);
        Assert.True(verify.Succeeded, verify.ToString());

        var second = await RunInPrivateRootAsync(dir, install);

        Assert.True(second.Succeeded, second.ToString());
        Assert.DoesNotContain("update-ca-certificates", second.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("to apply", second.StdOut, StringComparison.Ordinal);

        var uninstall = await RunInPrivateRootAsync(dir, ["--uninstall"]);

        Assert.True(uninstall.Succeeded, uninstall.ToString());
        Assert.Contains("running: update-ca-certificates --fresh", uninstall.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain(body, Unwrapped(bundle), StringComparison.Ordinal);
        Assert.Null(new FileInfo(dir.Combine("etc", "ssl", "certs", "mitmcache.pem")).LinkTarget);
        Assert.Equal(configDirBefore, Directory.Exists(dir.Combine("etc", "mitmcache")));
        Assert.False(File.Exists(dir.Combine("local-ca", "mitmcache.crt")));
        Assert.Equal(realManifestBefore, File.Exists(RealManifest)); // the machine's own /etc was never written
    }

    private static string Unwrapped(string bundle) => File.ReadAllText(bundle).Replace("\n", "", StringComparison.Ordinal);

    private static Task<ProcessResult> RunInPrivateRootAsync(TempDir dir, string[] args) =>
        ProcessRunner.RunAsync("/usr/bin/unshare",
        [
            "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", "mount --bind \"$0/etc\" /etc && mount --bind \"$0/local-ca\" \"$1\" && shift && exec \"$@\"",
            dir.Path, LocalCaDir, RepositoryFiles.Combine("ca", "install-node.sh"), .. args,
        ], new Dictionary<string, string?> { ["DESTDIR"] = null }, TimeSpan.FromMinutes(2));
}
