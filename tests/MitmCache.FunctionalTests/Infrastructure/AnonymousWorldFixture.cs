namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>One anonymous registry world shared by a test class whose tests do not kill anything.</summary>
public sealed class AnonymousWorldFixture : IAsyncLifetime
{
    public RegistryWorld World { get; private set; } = null!;

    public async Task InitializeAsync() => World = await RegistryWorld.StartAsync(tokenAuth: false);

    public async Task DisposeAsync() => await World.DisposeAsync();
}
