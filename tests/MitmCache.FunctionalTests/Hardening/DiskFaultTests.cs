using System.Net;
using MitmCache.Caching;
using MitmCache.Core.Tests;
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
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow); // real time, so that real clients take the leaves
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { DataDirectory = mount.Path }, time: time);
        var image = await world.PushImageAsync("library/huge", "v1", (6_000_000, 111), (20_000, 112));
        var big = image.Layers[0];
        var reference = $"{world.Authority}/library/huge:v1";
        var cache = world.Proxy.Get<BlobCache>();

        var full = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-full"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(full.Succeeded, full.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(big.Bytes, await File.ReadAllBytesAsync(world.Dir.Combine("oci-full", "blobs", "sha256", Digests.Hex(big.Digest))));
        Assert.Null(cache.TryGet(Digest(big.Digest)));
        Assert.True(await world.Proxy.Log.WaitForAsync(l => l.Contains("\"Result\":\"bypass\"", StringComparison.Ordinal)), world.Proxy.Log.Tail());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(mount.Path, "tmp")));
        using var http = new HttpClient();
        using var ready = await http.GetAsync($"{world.Proxy.Url}/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("degraded", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Space returns: after the retry interval the next pull fills the cache again.
        await mount.ResizeAsync("64m");
        Assert.True(cache.IsStorageDegraded, "storage is tried again only after the interval");
        time.Advance(BlobCache.StorageRetryInterval);
        var again = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-again"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(again.Succeeded, again.StdErr);
        await cache.FillsEnded(); // the commit follows the client's last byte
        Assert.NotNull(cache.TryGet(Digest(big.Digest)));
        Assert.False(cache.IsStorageDegraded);
    }

    [Fact]
    public async Task DiskFullUnderTheIndex_IndexReopensWhenSpaceReturns_CachedImagePullsOffline()
    {
        using var mount = await TmpfsMount.CreateAsync("16m");
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { DataDirectory = mount.Path }, time: time);
        await world.PushImageAsync("library/kept", "v1", (200_000, 141));
        await world.PushImageAsync("library/later", "v1", (30_000, 142));
        var kept = $"{world.Authority}/library/kept:v1";
        Assert.True((await Skopeo.CopyToOciAsync(kept, world.Dir.Combine("oci-kept"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None)).Succeeded);

        // Leave one page free: small files still land, the index log (8 KiB pages) does not. LiteDB
        // closes its engine on that error and, left alone, fails every later call until a restart.
        var filler = Path.Combine(mount.Path, "filler");
        FillUp(filler);
        using (var handle = File.OpenHandle(filler, FileMode.Open, FileAccess.Write))
        {
            RandomAccess.SetLength(handle, RandomAccess.GetLength(handle) - 4096);
        }

        var later = await Skopeo.CopyToOciAsync($"{world.Authority}/library/later:v1", world.Dir.Combine("oci-later"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(later.Succeeded, later.StdErr + "\n" + world.Proxy.Log.Tail());
        var index = world.Proxy.Get<IndexDatabase>();

        File.Delete(filler);
        time.Advance(IndexDatabase.ReopenInterval);
        await world.KillUpstreamsAsync();
        var offline = await Skopeo.CopyToOciAsync(kept, world.Dir.Combine("oci-offline"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(offline.Succeeded, offline.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.True(index.Reopens > 0, "the index never failed: the test did not fill the disk under it");
    }

    [Fact]
    public async Task DiskFullUnderTheIndex_RefusalStillRevokesTheGrant()
    {
        using var mount = await TmpfsMount.CreateAsync("4m");
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var index = new IndexDatabase(Path.Combine(mount.Path, "index.db"), time);
        var grants = new AccessGrants(new byte[32], new GrantRecords(index), new RepositoryVisibility(index), new AccessTokens(time), time, TimeSpan.FromDays(7));
        const string Credential = "Basic dXNlcjpwYXNz";
        grants.RecordSuccess(Credential, "registry.test", "team/private");
        Assert.True(grants.IsGranted(Credential, "registry.test", "team/private"));
        var failures = 0;
        index.WriteFailed += _ => failures++;

        var filler = Path.Combine(mount.Path, "filler");
        FillUp(filler);
        grants.RecordRefusal(Credential, "registry.test", "team/private");

        Assert.Equal(1, failures); // the delete did not reach the index...
        Assert.False(grants.IsGranted(Credential, "registry.test", "team/private")); // ...and the grant is gone all the same

        File.Delete(filler);
        time.Advance(IndexDatabase.ReopenInterval);
        Assert.False(grants.IsGranted(Credential, "registry.test", "team/private"));
        grants.RecordSuccess(Credential, "registry.test", "team/private"); // upstream says yes again
        Assert.True(grants.IsGranted(Credential, "registry.test", "team/private"));
    }

    private static void FillUp(string path)
    {
        var chunk = new byte[64 * 1024];
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        try
        {
            while (true)
            {
                stream.Write(chunk);
            }
        }
        catch (IOException)
        {
        }
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

    public Task ResizeAsync(string size) => RemountAsync($"size={size}");

    public async Task RemountAsync(string options)
    {
        var result = await ProcessRunner.RunAsync("mount", ["-o", $"remount,{options}", Path]);
        Assert.True(result.Succeeded, result.StdErr);
    }

    public void Dispose()
    {
        ProcessRunner.RunAsync("umount", ["-l", Path]).GetAwaiter().GetResult();
        _dir.Dispose();
    }
}

/// <summary>A data directory that cannot be written, and an index that cannot be read.</summary>
public sealed class DataDirectoryFaultTests
{
    [Fact]
    public async Task ReadOnlyDataDirectory_FailsClearlyOrServesPassThroughWhenAsked()
    {
        using var mount = await TmpfsMount.CreateAsync("16m");
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { DataDirectory = mount.Path });
        await world.PushImageAsync("library/readonly", "v1", (100_000, 121));
        var settings = world.Proxy.Settings;
        await world.Proxy.DisposeAsync();
        await mount.RemountAsync("ro");

        var failure = await Assert.ThrowsAsync<CacheUnavailableException>(() => ProxyUnderTest.StartAsync(settings));
        Assert.Contains("--on-cache-failure passthrough", failure.Message, StringComparison.Ordinal);

        await using var passthrough = await ProxyUnderTest.StartAsync(settings with { OnCacheFailure = MitmCache.Configuration.CacheFailureMode.Passthrough });
        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/readonly:v1", world.Dir.Combine("oci"), passthrough.Url, passthrough.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr + "\n" + passthrough.Log.Tail());
        using var http = new HttpClient();
        var ready = await http.GetStringAsync($"{passthrough.Url}/readyz");
        Assert.Contains("pass-through", ready, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadOnlyDataDirectoryWithOnlyTheCa_PassThroughStarts()
    {
        using var mount = await TmpfsMount.CreateAsync("16m");
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { DataDirectory = mount.Path });
        await world.PushImageAsync("library/bare", "v1", (100_000, 125));
        var settings = world.Proxy.Settings;
        await world.Proxy.DisposeAsync();
        foreach (var entry in new DirectoryInfo(mount.Path).EnumerateFileSystemInfos().Where(e => e.Name != "ca"))
        {
            if (entry is DirectoryInfo directory)
            {
                directory.Delete(recursive: true);
            }
            else
            {
                entry.Delete();
            }
        }

        await mount.RemountAsync("ro");

        await using var passthrough = await ProxyUnderTest.StartAsync(settings with { OnCacheFailure = MitmCache.Configuration.CacheFailureMode.Passthrough });
        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/bare:v1", world.Dir.Combine("oci"), passthrough.Url, passthrough.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr + "\n" + passthrough.Log.Tail());
        using var http = new HttpClient();
        Assert.Contains("pass-through", await http.GetStringAsync($"{passthrough.Url}/readyz"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CorruptedIndex_MovedAsideAndRebuiltFromBlobFiles()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/corrupt", "v1", (300_000, 131), (40_000, 132));
        var reference = $"{world.Authority}/library/corrupt:v1";
        Assert.True((await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-1"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None)).Succeeded);
        var settings = world.Proxy.Settings;
        await world.Proxy.DisposeAsync();
        await world.Registry.SyncAccessLogAsync(); // the proxy has stopped: everything it asked upstream is logged
        var blobGets = world.Registry.CountRequests("GET", "/blobs/");
        Assert.True(blobGets >= image.Blobs.Count(), $"the first pull fetched {blobGets} blobs");

        var index = Path.Combine(settings.DataDirectory, "index.db");
        var bytes = await File.ReadAllBytesAsync(index);
        var random = new Random(5);
        for (var i = 8192; i < bytes.Length; i += 97)
        {
            bytes[i] = (byte)random.Next();
        }

        await File.WriteAllBytesAsync(index, bytes);

        await using var restarted = await ProxyUnderTest.StartAsync(settings);
        Assert.Contains(restarted.Log.Lines, l => l.Contains("rebuilt the index from the blob files", StringComparison.Ordinal));
        Assert.Single(Directory.EnumerateFiles(settings.DataDirectory, "index.db.corrupt-*"));
        var cache = restarted.Get<BlobCache>();
        foreach (var (digest, _) in image.Layers)
        {
            Assert.NotNull(cache.TryGet(MitmCache.Registry.Digest.TryParse(digest, out var d) ? d : default));
        }

        // The links went with the index, and a link is only ever earned by bytes fetched through the
        // repository: the first pull fetches each blob once more, the next one is served from the cache.
        var again = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-2"), restarted.Url, restarted.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(again.Succeeded, again.StdErr + "\n" + restarted.Log.Tail());
        Assert.Equal(2 * blobGets, await world.Registry.WaitForRequestsAsync("GET", "/blobs/", 2 * blobGets));
        var third = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-3"), restarted.Url, restarted.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(third.Succeeded, third.StdErr + "\n" + restarted.Log.Tail());
        await restarted.StopAsync(); // it lets its responses end first
        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(2 * blobGets, world.Registry.CountRequests("GET", "/blobs/"));
    }
}

/// <summary>A cached file altered on disk is detected on read and never served as valid.</summary>
public sealed class AlteredBlobTests
{
    [Fact]
    public async Task AlteredBlobAndManifest_DetectedOnRead_QuarantinedAndRefetched()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { VerifyOnRead = MitmCache.Configuration.VerifyOnRead.Always });
        var image = await world.PushImageAsync("library/altered", "v1", (500_000, 141));
        var (digest, bytes) = image.Layers[0];
        using var client = ProxyClients.Create(world.Proxy);
        var url = $"https://{world.Authority}/v2/library/altered/blobs/{digest}";
        Assert.Equal(bytes, await client.GetByteArrayAsync(url));
        var cache = world.Proxy.Get<BlobCache>();
        await cache.FillsEnded(); // the commit follows the client's last byte
        var stored = cache.TryGet(MitmCache.Registry.Digest.TryParse(digest, out var d) ? d : default)!;
        var altered = await File.ReadAllBytesAsync(stored.Path);
        altered[altered.Length / 3] ^= 0x5A;
        await File.WriteAllBytesAsync(stored.Path, altered);

        var broken = await MitmCache.FunctionalTests.Registry.UpstreamFaultTests.TryGetBytesAsync(client, url);

        Assert.False(broken.Complete && broken.Status == HttpStatusCode.OK, "an altered blob must never arrive as a complete 200");
        Assert.Null(cache.TryGet(d));
        Assert.True(await world.Proxy.Log.WaitForAsync(l => l.Contains("no longer matches its digest", StringComparison.Ordinal)), world.Proxy.Log.Tail());
        Assert.Equal(bytes, await client.GetByteArrayAsync(url));
    }
}
