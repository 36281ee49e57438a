using System.Text.Json;
using MitmCache.ObjectStore;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class SharedPingTests
{
    private const string Registry = "registry.test:5000";
    private static readonly DateTimeOffset s_seen = new(2026, 12, 3, 8, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Format_HoldsOnlyTheRegistryTheAnswerAndWhen_AndParsesBack()
    {
        var ping = new SharedPing(Registry, "Bearer realm=\"https://auth.test/token\",service=\"registry.test\"", null, s_seen);

        var json = JsonSerializer.Serialize(ping, S3BlobTier.Json);

        Assert.Equal(
            "{\"registry\":\"registry.test:5000\",\"wwwAuthenticate\":\"Bearer realm=\\u0022https://auth.test/token\\u0022,service=\\u0022registry.test\\u0022\",\"redirect\":null,\"seenAt\":\"2026-12-03T08:00:00+00:00\"}",
            json);
        var back = JsonSerializer.Deserialize<SharedPing>(json, S3BlobTier.Json);
        Assert.Equal(ping, back);
        Assert.True(back!.IsValidFor(Registry));
    }

    [Fact]
    public void OpenAndRedirect_AreValid()
    {
        Assert.True(new SharedPing(Registry, null, null, s_seen).IsValidFor(Registry));
        Assert.True(new SharedPing(Registry, null, "https://backing.test/v2/", s_seen).IsValidFor(Registry));
    }

    [Theory]
    [InlineData("other.test", "Bearer realm=\"https://auth.test/token\"", null)] // names another registry than its key
    [InlineData(Registry, "Bearer realm=\"x\"\r\nSet-Cookie: a=b", null)] // would split the header
    [InlineData(Registry, "", null)]
    [InlineData(Registry, null, "http://backing.test/v2/")] // only https redirects are remembered
    [InlineData(Registry, null, "/v2/")]
    [InlineData(Registry, "Basic realm=\"r\"", "https://backing.test/v2/")] // one answer, not two
    public void Invalid_IsNotRead(string registry, string? challenge, string? redirect)
    {
        Assert.False(new SharedPing(registry, challenge, redirect, s_seen).IsValidFor(Registry));
    }

    [Fact]
    public void Key_IsPerRegistry_AndOnlyForAValidName()
    {
        Assert.Equal("p/registries/registry.test:5000/ping", new ObjectLayout("p").PingKey(Registry));
        Assert.Null(new ObjectLayout("p").PingKey("Registry.Test/../x"));
    }
}
