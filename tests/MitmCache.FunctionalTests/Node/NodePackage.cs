using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// The .deb, built by packaging/build-deb.sh once per test run (the self-contained publish takes a
/// minute or two), and a second one with a higher version from the same binary, for the upgrade.
/// They stay in a temp directory; MITMCACHE_TEST_DEBS=that directory reuses them.
/// </summary>
internal static class NodePackage
{
    public const string Version = "1.0.0";
    public const string UpgradeVersion = "1.0.1";

    private static readonly Lazy<Task<string>> s_build = new(BuildAsync);

    /// <summary>The directory holding <c>mitmcache_1.0.0_amd64.deb</c> and <c>mitmcache_1.0.1_amd64.deb</c>.</summary>
    public static Task<string> DirectoryAsync() => s_build.Value;

    public static string FileName(string version) => $"mitmcache_{version}_amd64.deb";

    private static async Task<string> BuildAsync()
    {
        // A directory that already holds both packages (a developer re-running the tests) is used as it is.
        if (Environment.GetEnvironmentVariable("MITMCACHE_TEST_DEBS") is { Length: > 0 } built
            && File.Exists(Path.Combine(built, FileName(Version))) && File.Exists(Path.Combine(built, FileName(UpgradeVersion))))
        {
            return built;
        }

        var dir = Path.Combine(Path.GetTempPath(), $"mitmcache-deb-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var script = RepositoryFiles.Combine("packaging", "build-deb.sh");
        var first = await ProcessRunner.RunAsync("bash", [script, "--version", Version, "--out", dir], timeout: TimeSpan.FromMinutes(10));
        Assert.True(first.Succeeded, first.ToString());

        // The upgrade: the same build under a higher version, as a newer package of it would arrive.
        var binary = Path.Combine(dir, "bin");
        var extract = await ProcessRunner.RunAsync("dpkg-deb", ["-x", Path.Combine(dir, FileName(Version)), binary]);
        Assert.True(extract.Succeeded, extract.ToString());
        var second = await ProcessRunner.RunAsync("bash", [script, "--version", UpgradeVersion, "--out", dir, "--binary", Path.Combine(binary, "usr", "bin", "mitmcache")],
            timeout: TimeSpan.FromMinutes(5));
        Assert.True(second.Succeeded, second.ToString());
        Directory.Delete(binary, recursive: true);
        return dir;
    }
}
