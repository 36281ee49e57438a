using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Certificates;

namespace MitmCache.Core.Tests.Certificates;

public sealed class LeafCertificateCacheTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly CertificateAuthority _ca;

    public LeafCertificateCacheTests()
    {
        _ca = CertificateAuthority.Create([], _time);
    }

    public void Dispose() => _ca.Dispose();

    [Fact]
    public void Get_SameHostTwice_MintsOnceAndReturnsSameContext()
    {
        var cache = CreateCache();

        var first = cache.Get("registry.example.com");
        var second = cache.Get("registry.example.com");

        Assert.Same(first, second);
        Assert.Equal(1, cache.MintedCount);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void Get_SpellingsOfOneHost_ShareOneEntry()
    {
        var cache = CreateCache();

        var a = cache.Get("Registry.Example.com");
        var b = cache.Get("registry.example.com");
        var c = cache.Get("[::1]");
        var d = cache.Get("0:0::1");

        Assert.Same(a, b);
        Assert.Same(c, d);
        Assert.Equal(2, cache.MintedCount);
    }

    [Fact]
    public void Get_Context_TargetIsLeafForHostAndRootIsSentAlong()
    {
        var cache = CreateCache();

        var context = cache.Get("registry.example.com");

        Assert.Equal("CN=registry.example.com", context.TargetCertificate.Subject);
        Assert.True(context.TargetCertificate.HasPrivateKey);
        Assert.True(CertificateTestHelpers.Validate(context.TargetCertificate, _ca.PublicCertificate).Valid);
    }

    [Fact]
    public void Get_ConcurrentSameHostFrom32Threads_MintsOnce()
    {
        var cache = CreateCache();

        var contexts = Threads.AtOnce(32, () => cache.Get("registry.example.com"));

        Assert.Equal(1, cache.MintedCount);
        Assert.All(contexts, c => Assert.Same(contexts[0], c));
    }

    [Fact]
    public async Task Get_ConcurrentDifferentHosts_MintsOncePerHost()
    {
        var cache = CreateCache();

        var contexts = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() => cache.Get($"host{i % 8}.example.com"))));

        Assert.Equal(8, cache.MintedCount);
        Assert.Equal(8, contexts.Distinct().Count());
    }

    [Fact]
    public void Get_BeforeTwoThirdsOfValidity_KeepsLeaf()
    {
        var cache = CreateCache();
        var first = cache.Get("registry.example.com");

        _time.Advance(TimeSpan.FromDays(19));
        var second = cache.Get("registry.example.com");

        Assert.Same(first, second);
        Assert.Equal(1, cache.MintedCount);
    }

    [Fact]
    public void Get_LessThanAThirdOfValidityLeft_RenewsOnce()
    {
        var cache = CreateCache();
        var first = cache.Get("registry.example.com");

        _time.Advance(TimeSpan.FromDays(21));
        var renewed = cache.Get("registry.example.com");
        var again = cache.Get("registry.example.com");

        Assert.NotSame(first, renewed);
        Assert.Same(renewed, again);
        Assert.Equal(2, cache.MintedCount);
        Assert.Equal(1, cache.Count);
        Assert.True(renewed.TargetCertificate.NotAfter > first.TargetCertificate.NotAfter.AddDays(20));
    }

    [Fact]
    public void GetServerOptions_SameHostAnySpelling_OneSharedInstanceWithLeafAndAlpn()
    {
        var cache = CreateCache();

        var first = cache.GetServerOptions("registry.example.com");
        var second = cache.GetServerOptions("Registry.Example.COM");

        Assert.Same(first, second);
        Assert.Same(cache.Get("registry.example.com"), first.ServerCertificateContext);
        Assert.Equal([SslApplicationProtocol.Http2, SslApplicationProtocol.Http11], first.ApplicationProtocols);
        Assert.Equal(1, cache.MintedCount);
    }

    [Fact]
    public void GetServerOptions_LessThanAThirdOfValidityLeft_RenewedLeafInFreshOptions()
    {
        var cache = CreateCache();
        var first = cache.GetServerOptions("registry.example.com");

        _time.Advance(TimeSpan.FromDays(21));
        var renewed = cache.GetServerOptions("registry.example.com");

        Assert.NotSame(first, renewed);
        Assert.NotSame(first.ServerCertificateContext, renewed.ServerCertificateContext);
        Assert.Same(renewed, cache.GetServerOptions("registry.example.com"));
        Assert.Equal(2, cache.MintedCount);
    }

    [Fact]
    public void GetServerOptions_InvalidHost_ThrowsArgumentException()
    {
        var cache = CreateCache();

        Assert.Throws<ArgumentException>(() => cache.GetServerOptions("bad host"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Get_OverCapacity_EvictsLeastRecentlyUsed()
    {
        var cache = CreateCache(capacity: 2);
        var a = cache.Get("a.example");
        cache.Get("b.example");
        cache.Get("a.example");          // a is now more recent than b

        cache.Get("c.example");          // evicts b

        Assert.Equal(2, cache.Count);
        Assert.Equal(3, cache.MintedCount);
        Assert.Same(a, cache.Get("a.example"));
        Assert.Equal(3, cache.MintedCount);
        cache.Get("b.example");          // minted again, evicts c
        Assert.Equal(4, cache.MintedCount);
        Assert.Equal(2, cache.Count);
        cache.Get("a.example");
        Assert.Equal(4, cache.MintedCount);
    }

    [Fact]
    public void Get_ManyHosts_CountNeverExceedsCapacity()
    {
        var cache = CreateCache(capacity: 16);

        for (var i = 0; i < 40; i++)
        {
            cache.Get($"h{i}.example");
        }

        Assert.Equal(16, cache.Count);
        Assert.Equal(40, cache.MintedCount);
    }

    [Fact]
    public void Get_InvalidHost_ThrowsArgumentExceptionAndCachesNothing()
    {
        var cache = CreateCache();

        Assert.Throws<ArgumentException>(() => cache.Get("bad host"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Get_RootExpired_ThrowsAndDoesNotCacheFailure()
    {
        var cache = CreateCache();
        _time.Advance(_ca.NotAfter - _time.GetUtcNow() + TimeSpan.FromDays(1));

        Assert.Throws<InvalidOperationException>(() => cache.Get("registry.example.com"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Constructor_CapacityZero_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateCache(capacity: 0));
    }

    [Fact]
    public async Task Get_ContextServedBySslStream_ClientTrustingRootCompletesHandshake()
    {
        var cache = CreateCache();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        var accept = listener.AcceptTcpClientAsync();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var server = await accept;
        await using var serverTls = new SslStream(server.GetStream());
        await using var clientTls = new SslStream(client.GetStream());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // The same shape as Kestrel's TlsHandshakeCallbackOptions: pick the context from SNI.
        var serverTask = serverTls.AuthenticateAsServerAsync(
            (_, hello, _, _) => ValueTask.FromResult(new SslServerAuthenticationOptions { ServerCertificateContext = cache.Get(hello.ServerName) }),
            null,
            timeout.Token);
        var clientPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        clientPolicy.CustomTrustStore.Add(_ca.PublicCertificate);
        var clientTask = clientTls.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions { TargetHost = "registry.example.com", CertificateChainPolicy = clientPolicy },
            timeout.Token);

        await Task.WhenAll(serverTask, clientTask);

        Assert.Equal("CN=registry.example.com", clientTls.RemoteCertificate!.Subject);
        Assert.Equal(1, cache.MintedCount);
    }

    private LeafCertificateCache CreateCache(int capacity = LeafCertificateCache.DefaultCapacity) =>
        new(new LeafCertificateFactory(_ca, _time), _time, capacity);
}
