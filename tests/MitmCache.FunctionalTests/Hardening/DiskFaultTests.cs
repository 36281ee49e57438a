using System.Net;
using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>The data directory on a tiny tmpfs (mounted by the test; CI runs as root).</summary>
public sealed class DiskFaultTests
{
    [Fact]
    public async Task DiskFullDuringColdPull_PullCompletesPassThrough_NothingHalfWritten_CachingResumesWithSpace()
    {
        using var mount = await TmpfsMount.CreateAsync("2m");
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { DataDirectory = mount.Path });
        var image = await world.PushImageAsync("library/huge", "v1", (6_000_000, 111), (20_000, 112));
        var big = image.Layers[0];
        var reference = $"{world.Authority}/library/huge:v1";
        var cache = world.Proxy.Get<BlobCache>();

        var full = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-full"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(full.Succeeded, full.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(big.Bytes, await File.ReadAllBytesAsync(world.Dir.Combine("oci-full", "blobs", "sha256", Digests.Hex(big.Digest))));
        Assert.Null(cache.TryGet(Digest(big.Digest)));
        Assert.Contains(world.Proxy.Log.Lines, l => l.Contains("\"Result\":\"bypass\"", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(mount.Path, "tmp")));
        using var http = new HttpClient();
        using var ready = await http.GetAsync($"{world.Proxy.Url}/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("degraded", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Space returns: after the retry interval the next pull fills the cache again.
        await mount.ResizeAsync("64m");
        await Task.Delay(BlobCache.StorageRetryInterval + TimeSpan.FromSeconds(1));
        var again = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-again"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(again.Succeeded, again.StdErr);
        Assert.NotNull(cache.TryGet(Digest(big.Digest)));
        Assert.False(cache.IsStorageDegraded);
    }

    private static Digest Digest(string text) => MitmCache.Registry.Digest.TryParse(text, out var d) ? d : throw new ArgumentException(text);
}

/// <summary>A tmpfs mounted on a temp directory for the life of the test.</summary>
internal sealed class TmpfsMount : IDisposable
{
    private readonly TempDir _dir;

    private TmpfsMount(TempDir dir) => _dir = dir;

    public string Path => _dir.Combine("mnt");

    public static async Task<TmpfsMount> CreateAsync(string size)
    {
        var mount = new TmpfsMount(TempDir.Create("mitmcache-tmpfs"));
        Directory.CreateDirectory(mount.Path);
        var result = await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={size},mode=0700", "tmpfs", mount.Path]);
        Assert.True(result.Succeeded, $"mounting a tmpfs needs root: {result.StdErr}");
        return mount;
    }

    public async Task ResizeAsync(string size)
    {
        var result = await ProcessRunner.RunAsync("mount", ["-o", $"remount,size={size}", Path]);
        Assert.True(result.Succeeded, result.StdErr);
    }

    public void Dispose()
    {
        ProcessRunner.RunAsync("umount", ["-l", Path]).GetAwaiter().GetResult();
        _dir.Dispose();
    }
}
