using System.Net;
using MitmCache.Configuration;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// A whole upstream world on loopback plus the proxy in front of it: the real distribution registry
/// as <c>registry.test</c>, and in the Docker Hub shape also a token server (<c>auth.test</c>) and a
/// CDN (<c>cdn.test</c>) that blob GETs redirect to. Only the proxy resolves these names (through
/// <c>--connect-to</c>), exactly as clients behind HTTPS_PROXY would have it.
/// </summary>
public sealed class RegistryWorld : IAsyncDisposable
{
    private readonly List<HangingServer> _hanging = [];

    private RegistryWorld(TempDir dir, TestPki pki)
    {
        Dir = dir;
        Pki = pki;
    }

    public TempDir Dir { get; }

    public TestPki Pki { get; }

    public RegistryServer Registry { get; private set; } = null!;

    public TokenServer? Tokens { get; private set; }

    public StaticHttpsServer? Cdn { get; private set; }

    public ProxyUnderTest Proxy { get; private set; } = null!;

    /// <summary>An image reference prefix, <c>registry.test:PORT</c>.</summary>
    public string Authority => Registry.Authority;

    /// <param name="tokenAuth">Docker Hub shape: token auth and blob redirects to a CDN.</param>
    /// <param name="users">Token server users (user → password); admin is always there for pushes.</param>
    /// <param name="acl">Token server ACL; default: everyone pulls everything.</param>
    /// <param name="tokenPath">The token realm's path: Docker Hub's <c>/token</c>, or under <c>/v2/</c> as on quay.io and gcr.io.</param>
    /// <param name="time">The proxy's clock; the system's by default.</param>
    /// <param name="network">A namespace to run the registry in (on its address, not loopback), where its packets can be dropped.</param>
    public static async Task<RegistryWorld> StartAsync(
        bool tokenAuth,
        Func<ProxySettings, ProxySettings>? configure = null,
        IReadOnlyDictionary<string, string>? users = null,
        Func<string?, string, string[], string[]>? acl = null,
        string tokenPath = "/token",
        TimeProvider? time = null,
        NetworkNamespace? network = null)
    {
        var dir = TempDir.Create("mitmcache-world");
        var world = new RegistryWorld(dir, TestPki.Create(dir.Combine("pki")));
        var registryDir = dir.Combine("registry");
        var options = new RegistryOptions { Network = network };
        if (tokenAuth)
        {
            var allUsers = new Dictionary<string, string>(users ?? new Dictionary<string, string>()) { [TokenServer.AdminUser] = TokenServer.DefaultAdminPassword };
            world.Tokens = await TokenServer.StartAsync(world.Pki, dir.Combine("tokens"), allUsers, acl, tokenPath);
            world.Cdn = await StaticHttpsServer.StartAsync(world.Pki, RegistryServer.StorageRootIn(registryDir));
            options = options with { Token = world.Tokens, RedirectBaseUrl = world.Cdn.BaseUrl };
        }

        world.Registry = await RegistryServer.StartAsync(world.Pki, registryDir, options, CancellationToken.None);
        var settings = world.DefaultProxySettings();
        world.Proxy = await ProxyUnderTest.StartAsync(configure?.Invoke(settings) ?? settings, time: time);
        return world;
    }

    /// <summary>Settings a user would pass: intercept the test registry and its token host, trust the test CA.</summary>
    public ProxySettings DefaultProxySettings()
    {
        var connectTo = new List<ConnectToRule> { new(Hosts.Registry, Registry.Port, Registry.Address.ToString(), Registry.Port) };
        var ports = new HashSet<int> { 443, Registry.Port };
        if (Tokens is not null)
        {
            connectTo.Add(new(Hosts.Auth, Tokens.Port, "127.0.0.1", Tokens.Port));
            ports.Add(Tokens.Port);
        }

        if (Cdn is not null)
        {
            connectTo.Add(new(Hosts.Cdn, Cdn.Port, "127.0.0.1", Cdn.Port));
            ports.Add(Cdn.Port);
        }

        return new ProxySettings
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            DataDirectory = Dir.Combine("proxy"),
            Intercept = [.. ProxySettings.DefaultIntercept, Hosts.Registry, Hosts.Auth],
            AllowedPorts = ports,
            UpstreamCaFile = Pki.CaCertPath,
            ConnectTo = connectTo,
            UpstreamTimeout = TimeSpan.FromSeconds(5),
        };
    }

    /// <summary>
    /// Replaces the proxy with one started from <paramref name="configure"/>(the current settings), on the same
    /// data directory unless told otherwise: for fixtures that need the world's PKI before the proxy knows them.
    /// </summary>
    public async Task ReplaceProxyAsync(Func<ProxySettings, ProxySettings> configure)
    {
        var settings = configure(Proxy.Settings);
        await Proxy.DisposeAsync();
        Proxy = await ProxyUnderTest.StartAsync(settings);
    }

    /// <summary>What a client needs to reach another fixture through the proxy: intercepted, its port allowed, dialled on loopback.</summary>
    public static ProxySettings Reach(ProxySettings settings, string host, int port) => settings with
    {
        Intercept = [.. settings.Intercept, host],
        AllowedPorts = new HashSet<int>(settings.AllowedPorts) { port },
        ConnectTo = [new(host, port, "127.0.0.1", port), .. settings.ConnectTo],
    };

    /// <summary>A refresh token for <paramref name="user"/>, from the token server's OAuth password grant (asked directly, not through the proxy).</summary>
    public async Task<string> GetRefreshTokenAsync(string user, string password)
    {
        using var http = Registry.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = user, ["password"] = password,
            ["service"] = Tokens!.Service, ["client_id"] = "mitmcache-tests",
        });
        using var response = await http.PostAsync(Tokens.Realm, form);
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("refresh_token").GetString()!;
    }

    /// <summary>Pushes an image directly to the registry (not through the proxy).</summary>
    public async Task<BuiltImage> PushImageAsync(string repository, string tag, params (int Size, int Seed)[] layers)
    {
        var builder = new OciImageBuilder();
        foreach (var (size, seed) in layers)
        {
            builder.AddLayer(size, seed);
        }

        var image = builder.Build();
        using var http = Registry.CreateClient();
        await new RegistryPusher(http, Authority).PushAsync(repository, tag, image, CancellationToken.None);
        return image;
    }

    /// <summary>Pushes a two-platform index (amd64 and arm64) directly to the registry.</summary>
    public async Task<BuiltIndex> PushIndexAsync(string repository, string tag, int seed)
    {
        var amd64 = new OciImageBuilder().AddLayer(4096, seed).AddLayer(2048, seed + 1).Build("linux", "amd64");
        var arm64 = new OciImageBuilder().AddLayer(4096, seed + 2).AddLayer(2048, seed + 3).Build("linux", "arm64");
        var index = OciImageBuilder.Index(amd64, arm64);
        using var http = Registry.CreateClient();
        await new RegistryPusher(http, Authority).PushIndexAsync(repository, tag, index, [amd64, arm64], CancellationToken.None);
        return index;
    }

    /// <summary>Kills every upstream: registry, token server and CDN. Only the proxy is left.</summary>
    public async Task KillUpstreamsAsync()
    {
        Registry.Kill();
        if (Tokens is not null)
        {
            await Tokens.StopAsync();
        }

        if (Cdn is not null)
        {
            await Cdn.StopAsync();
        }
    }

    /// <summary>
    /// Kills every upstream and puts a <see cref="HangingServer"/> on each of their ports: connections are
    /// accepted and never answered, until they are disposed (at the latest with the world).
    /// </summary>
    public async Task<IReadOnlyList<HangingServer>> HangUpstreamsAsync()
    {
        int[] ports = [Registry.Port, .. Tokens is null ? [] : new[] { Tokens.Port }, .. Cdn is null ? [] : new[] { Cdn.Port }];
        if (Registry.Address.Equals(System.Net.IPAddress.Loopback) is false)
        {
            throw new InvalidOperationException("a registry in a network namespace hangs by dropping its packets (NetworkNamespace.DropAsync)");
        }

        await KillUpstreamsAsync();
        var hanging = ports.Select(HangingServer.Start).ToList();
        _hanging.AddRange(hanging);
        return hanging;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var hanging in _hanging)
        {
            await hanging.DisposeAsync();
        }

        await Proxy.DisposeAsync();
        await Registry.DisposeAsync();
        if (Tokens is not null)
        {
            await Tokens.DisposeAsync();
        }

        if (Cdn is not null)
        {
            await Cdn.DisposeAsync();
        }

        Dir.Dispose();
    }
}
