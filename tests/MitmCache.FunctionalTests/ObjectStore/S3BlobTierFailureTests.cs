using System.Diagnostics;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// The engine dying, hanging and coming back under a read or an upload: the caller gets a clean failure at once
/// (never an exception other than IOException from a body), the breaker opens, later calls cost nothing, and one
/// probe closes it again once the engine answers. Each test leaves the gateway running.
/// </summary>
[Collection(CephFailureCollection.Name)]
public sealed class S3BlobTierFailureTests(CephEngineFixture fixture) : GatewayTests(fixture, "s3-failure")
{
    [Fact]
    public async Task ReadBody_GatewayKilledMidRead_FailsWithIOExceptionAndOpensTheBreaker()
    {
        using var harness = TierHarness.Create(Engine);
        await using var read = await StartReadingAsync(harness, "killed-read");

        Engine.KillGateway();
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<IOException>(() => TierHarness.DrainAsync(read.Body!));

        Assert.True(clock.Elapsed < harness.Settings.StallTimeout * 2, $"the read failed after {clock.Elapsed}");
        Assert.Contains("reading", error.Message, StringComparison.Ordinal);
        Assert.Equal(BreakerState.Open, harness.Tier.Breaker.State);
        Assert.False(harness.Tier.IsHealthy);
        Assert.Contains("unreachable", harness.Tier.DegradedReason, StringComparison.Ordinal);
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_errors_total", ("operation", "get"), ("reason", "unreachable")));
        Assert.Equal((int)BreakerState.Open, harness.Metrics.Value("mitmcache_blob_store_breaker_state"));
    }

    [Fact]
    public async Task ReadBody_GatewayFrozenMidRead_FailsAfterTheStallTimeout()
    {
        using var harness = TierHarness.Create(Engine);
        await using var read = await StartReadingAsync(harness, "frozen-read");

        await Engine.FreezeGatewayAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            await Assert.ThrowsAsync<IOException>(() => TierHarness.DrainAsync(read.Body!));

            Assert.True(clock.Elapsed < harness.Settings.StallTimeout * 3, $"the read failed after {clock.Elapsed}");
            Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_errors_total", ("operation", "get"), ("reason", "timeout")));
            Assert.Equal(BreakerState.Open, harness.Tier.Breaker.State);
        }
        finally
        {
            await Engine.ThawGatewayAsync();
        }
    }

    [Fact]
    public async Task Calls_GatewayFrozen_FirstTimesOutThenTheBreakerAnswersAtOnce()
    {
        using var harness = TierHarness.Create(Engine, s => s with { BreakerOpen = TimeSpan.FromSeconds(30) });
        var digest = TierHarness.WriteBlob(Dir.Combine("frozen"), 1000, seed: 7);
        await Engine.FreezeGatewayAsync();
        try
        {
            var first = Stopwatch.StartNew();
            Assert.Equal(TierOutcome.Unavailable, (await harness.Tier.HeadAsync(digest, default)).Outcome);
            first.Stop();
            var second = Stopwatch.StartNew();
            await using var read = await harness.Tier.OpenReadAsync(digest, 0, default);
            var upload = await harness.Tier.UploadAsync(digest, Dir.Combine("frozen"), "application/octet-stream", default);
            second.Stop();

            Assert.True(first.Elapsed < harness.Settings.RequestTimeout * 2, $"the first call took {first.Elapsed}");
            Assert.Equal((TierOutcome.Unavailable, UploadOutcome.Unavailable), (read.Outcome, upload));
            Assert.True(second.Elapsed < harness.Settings.RequestTimeout / 2, $"calls with the breaker open took {second.Elapsed}");
            Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_errors_total", ("reason", "timeout")));
            Assert.Equal(2, harness.Metrics.Value("mitmcache_blob_store_skipped_total"));
        }
        finally
        {
            await Engine.ThawGatewayAsync();
        }
    }

    [Fact]
    public async Task UploadAsync_GatewayKilledMidUpload_IsUnavailableAndLeavesNoObject()
    {
        using var harness = TierHarness.Create(Engine, s => s with { MultipartThreshold = 8 << 20, PartSize = 8 << 20 });
        var path = Dir.Combine("killed-upload");
        var digest = TierHarness.WriteBlob(path, 96L << 20, seed: 8);

        var upload = harness.Tier.UploadAsync(digest, path, "application/octet-stream", default);
        Assert.True(await Poll.UntilAsync(() => harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "upload")) > (12L << 20), TimeSpan.FromSeconds(30)),
            "the upload never got going");
        Engine.KillGateway();
        var clock = Stopwatch.StartNew();

        Assert.Equal(UploadOutcome.Unavailable, await upload);
        Assert.True(clock.Elapsed < harness.Settings.StallTimeout * 2, $"the upload failed after {clock.Elapsed}");
        Assert.Equal(BreakerState.Open, harness.Tier.Breaker.State);
        await Engine.StartGatewayAsync();
        Assert.Null(await harness.ReadObjectDirectlyAsync(digest)); // never completed, so never visible
    }

    [Fact]
    public async Task Breaker_GatewayBack_OneProbeClosesItAndCallsWorkAgain()
    {
        using var harness = TierHarness.Create(Engine);
        var digest = await harness.UploadNewAsync(Dir.Combine("back"), 10_000, seed: 3);
        Engine.KillGateway();
        Assert.Equal(TierOutcome.Unavailable, (await harness.Tier.HeadAsync(digest, default)).Outcome);
        Assert.Equal(BreakerState.Open, harness.Tier.Breaker.State);

        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => harness.Tier.Breaker.State == BreakerState.HalfOpen, TimeSpan.FromSeconds(5)));
        Assert.Equal(TierOutcome.Found, (await harness.Tier.HeadAsync(digest, default)).Outcome);

        Assert.True(harness.Tier.IsHealthy);
        Assert.Null(harness.Tier.DegradedReason);
        Assert.Contains(harness.Log.Lines, l => l.Contains("answers again", StringComparison.Ordinal));
        using var copy = new MemoryStream();
        Assert.Equal(TierOutcome.Found, await harness.Tier.CopyVerifiedAsync(digest, copy, default));
    }

    /// <summary>A 48 MiB object opened and its first MiB read: more than the sockets buffer, so the engine is still sending.</summary>
    private async Task<TierRead> StartReadingAsync(TierHarness harness, string name)
    {
        var digest = await harness.UploadNewAsync(Dir.Combine(name), 48L << 20, seed: name.Length);
        var read = await harness.Tier.OpenReadAsync(digest, 0, default);
        await read.Body!.ReadExactlyAsync(new byte[1 << 20]);
        return read;
    }
}
