using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>One real Ceph S3 engine for a test collection, with the bucket the tests share (each test has its own prefix).</summary>
public sealed class CephEngineFixture : IAsyncLifetime
{
    public const string Bucket = "mitmcache";

    public CephRgw Engine { get; private set; } = null!;

    public async Task InitializeAsync() => Engine = await CephRgw.StartAsync([Bucket]);

    public async Task DisposeAsync() => await Engine.DisposeAsync();
}

/// <summary>Round trips: the gateway stays up.</summary>
[CollectionDefinition(Name)]
public sealed class CephRoundTripCollection : ICollectionFixture<CephEngineFixture>
{
    public const string Name = "Ceph RGW round trips";
}

/// <summary>Failures: tests kill, freeze and restart the gateway, so they get an engine of their own.</summary>
[CollectionDefinition(Name)]
public sealed class CephFailureCollection : ICollectionFixture<CephEngineFixture>
{
    public const string Name = "Ceph RGW failures";
}
