using System.IO.Pipelines;
using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class BlobCommitsTests : BlobCacheTestBase
{
    [Fact]
    public async Task StartFill_IndexEngineFailsWhileEvictingAfterCommit_FillStillEndsAndLeavesTheMap()
    {
        Reopen(SmallCap);
        var body = Bytes(2 * (int)SmallCap, 41); // over the cap: the commit is followed by an eviction pass
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"), committed: _ => KillIndexEngine());

        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(body, File.ReadAllBytes(fill.FinalPath));
    }

    [Fact]
    public async Task StartFill_IndexEngineFailsAtCommit_StorageErrorAndNoFileLeftWithoutEntry()
    {
        var body = Bytes(100_000, 42);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();
        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length));
        await pipe.Writer.WriteAsync(body);
        while (fill.Written < body.Length)
        {
            await fill.WaitForAsync(fill.Written, CancellationToken.None).WaitAsync(s_timeout);
        }

        KillIndexEngine(); // the next index call (the commit's) meets a closed engine
        await pipe.Writer.CompleteAsync();

        Assert.Equal(FillOutcome.StorageError, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.IsStorageDegraded);
        Assert.False(File.Exists(fill.FinalPath)); // not committed but unindexed
        Assert.Null(_cache.TryGet(digest));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(1, _totals!.Sum("mitmcache_fills_completed_total", ("outcome", "storageerror")));
    }

    [UnixFact]
    public async Task StartFill_BlobDirectoryRefusesTheMove_StorageErrorBreakerTrips()
    {
        var body = Bytes(10_000, 43);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var directory = Path.GetDirectoryName(fill.FinalPath)!;
        Directory.CreateDirectory(directory);
        using var refusing = OperatingSystem.IsWindows() ? null : RefuseWrites(directory);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"));

        Assert.Equal(FillOutcome.StorageError, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.IsStorageDegraded);
        Assert.Null(_cache.TryGet(digest));
        Assert.Equal(0, _cache.InFlightCount);
    }

    [Fact]
    public async Task Committed_FillAndNewManifest_RaisedOnceEach_NotForAManifestAlreadyStored()
    {
        var seen = new List<CachedBlob>();
        _cache.Committed += blob => seen.Add(blob);
        _cache.Committed += _ => throw new InvalidOperationException("a subscriber that fails");
        var body = Bytes(50_000, 44);
        var layer = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(layer);
        var manifest = "{\"schemaVersion\":2}"u8.ToArray();
        var manifestDigest = Digest.Compute(manifest);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"));
        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.StoreSmall(manifestDigest, manifest, "application/vnd.oci.image.manifest.v1+json"));
        Assert.True(_cache.StoreSmall(manifestDigest, manifest, "application/vnd.oci.image.manifest.v1+json"));

        Assert.Equal([layer, manifestDigest], seen.Select(b => b.Digest));
        Assert.Equal(body.Length, seen[0].Record.Size);
        Assert.Equal(body, File.ReadAllBytes(seen[0].Path));
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", seen[1].Record.MediaType);
    }

    /// <summary>The index engine closes itself, as LiteDB does after an I/O error; the next call reopens it.</summary>
    private void KillIndexEngine() => Assert.True(_index!.Database.TryWrite(database => database.Dispose()));

    /// <summary>
    /// A directory nothing can be moved into (EACCES, or EPERM for root, whom modes do not stop: the immutable
    /// attribute), until disposed.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static IDisposable RefuseWrites(string directory)
    {
        if (Environment.UserName != "root")
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            return new Undo(() => File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        }

        Chattr("+i", directory);
        return new Undo(() => Chattr("-i", directory));
    }

    private static void Chattr(string flag, string path)
    {
        using var process = System.Diagnostics.Process.Start("chattr", [flag, path]);
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }

    private sealed class Undo(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
