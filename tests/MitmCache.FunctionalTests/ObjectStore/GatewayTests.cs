using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// Tests that kill, freeze and restart the shared engine's gateway: each starts and leaves it answering (thawed or
/// started again), so the next test in the collection is not hit by the last one's failure. A temp dir each.
/// </summary>
public abstract class GatewayTests(CephEngineFixture fixture, string name) : IAsyncLifetime
{
    protected TempDir Dir { get; } = TempDir.Create(name);

    protected CephRgw Engine => fixture.Engine;

    public Task InitializeAsync() => Engine.StartGatewayAsync();

    public async Task DisposeAsync()
    {
        await Engine.StartGatewayAsync();
        Dir.Dispose();
    }
}
