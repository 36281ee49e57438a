using System.Net;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Certificates;

namespace MitmCache.Core.Tests.Certificates;

public sealed class LeafCertificateFactoryTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly CertificateAuthority _ca;
    private readonly LeafCertificateFactory _factory;

    public LeafCertificateFactoryTests()
    {
        _ca = CertificateAuthority.Create([], _time);
        _factory = new LeafCertificateFactory(_ca, _time);
    }

    public void Dispose() => _ca.Dispose();

    [Fact]
    public void Mint_DnsName_LeafHasServerExtensionsAndPrivateKey()
    {
        using var leaf = _factory.Mint("registry-1.docker.io");

        Assert.True(leaf.HasPrivateKey);
        Assert.Equal(256, leaf.GetECDsaPrivateKey()!.KeySize);
        Assert.Equal("CN=registry-1.docker.io", leaf.Subject);
        Assert.Equal(_ca.Certificate.SubjectName.RawData, leaf.IssuerName.RawData);

        var basic = Assert.Single(leaf.Extensions.OfType<X509BasicConstraintsExtension>());
        Assert.False(basic.CertificateAuthority);
        var usage = Assert.Single(leaf.Extensions.OfType<X509KeyUsageExtension>());
        Assert.True(usage.Critical);
        Assert.Equal(X509KeyUsageFlags.DigitalSignature, usage.KeyUsages);
        var eku = Assert.Single(leaf.Extensions.OfType<X509EnhancedKeyUsageExtension>());
        Assert.Equal(CertificateTestHelpers.ServerAuthOid, Assert.Single(eku.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>()).Value);

        var aki = Assert.Single(leaf.Extensions.OfType<X509AuthorityKeyIdentifierExtension>());
        var rootSki = Assert.Single(_ca.Certificate.Extensions.OfType<X509SubjectKeyIdentifierExtension>());
        Assert.Equal(rootSki.SubjectKeyIdentifierBytes.ToArray(), aki.KeyIdentifier!.Value.ToArray());

        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.False(san.Critical);
        Assert.Equal(["registry-1.docker.io"], san.EnumerateDnsNames());
        Assert.Empty(san.EnumerateIPAddresses());

        var serial = leaf.SerialNumberBytes.Span;
        Assert.Equal(16, serial.Length);
        Assert.True(serial[0] < 0x80);
    }

    [Theory]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    [InlineData("[::1]", "::1")]
    [InlineData("::1", "::1")]
    [InlineData("[2001:DB8:0:0::1]", "2001:db8::1")]
    public void Mint_IpLiteral_SanHasIpAddressOnly(string host, string expected)
    {
        using var leaf = _factory.Mint(host);

        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.Equal([IPAddress.Parse(expected)], san.EnumerateIPAddresses());
        Assert.Empty(san.EnumerateDnsNames());
        Assert.Equal("CN=" + expected, leaf.Subject);
    }

    [Theory]
    [InlineData("Registry.Example.COM", "registry.example.com")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("under_score.example", "under_score.example")]
    [InlineData("*.pkg.dev", "*.pkg.dev")]
    [InlineData("localhost", "localhost")]
    public void Mint_AcceptedName_SanIsLowerCaseName(string host, string expected)
    {
        using var leaf = _factory.Mint(host);

        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.Equal([expected], san.EnumerateDnsNames());
    }

    [Fact]
    public void Mint_NameLongerThan64_EmptySubjectAndCriticalSan()
    {
        var host = string.Join('.', Enumerable.Repeat(new string('a', 60), 4)); // 243 characters

        using var leaf = _factory.Mint(host);

        Assert.Equal(string.Empty, leaf.Subject);
        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.True(san.Critical);
        Assert.Equal([host], san.EnumerateDnsNames());
        Assert.True(CertificateTestHelpers.Validate(leaf, _ca.PublicCertificate).Valid);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bücher.example")]
    [InlineData("a..b")]
    [InlineData(".example.com")]
    [InlineData("example.com.")]
    [InlineData("exa mple.com")]
    [InlineData("foo/bar")]
    [InlineData("host:443")]
    [InlineData("a.*.com")]
    [InlineData("*")]
    [InlineData("w*.example.com")]
    [InlineData("[1.2.3.4]")]
    [InlineData("[::1")]
    [InlineData("::1]")]
    [InlineData("[]")]
    [InlineData("fe80::1%eth0")]
    [InlineData("ex\nample.com")]
    public void Mint_InvalidHost_ThrowsArgumentException(string host)
    {
        Assert.Throws<ArgumentException>(() => _factory.Mint(host));
    }

    [Fact]
    public void Mint_NameLongerThan253_ThrowsArgumentException()
    {
        var host = string.Join('.', Enumerable.Repeat(new string('a', 63), 4)); // 255 characters

        Assert.Throws<ArgumentException>(() => _factory.Mint(host));
    }

    [Fact]
    public void Mint_LabelLongerThan63_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => _factory.Mint(new string('a', 64) + ".example"));
    }

    [Fact]
    public void Mint_Always_ValidFromAnHourAgoForThirtyDays()
    {
        var now = _time.GetUtcNow();

        using var leaf = _factory.Mint("example.com");

        Assert.Equal(Truncate(now - TimeSpan.FromHours(1)), leaf.NotBefore.ToUniversalTime());
        Assert.Equal(Truncate(now + TimeSpan.FromDays(30)), leaf.NotAfter.ToUniversalTime());
    }

    [Fact]
    public void Mint_RootExpiresWithinThirtyDays_NotAfterClampedToRoot()
    {
        _time.Advance(_ca.NotAfter - _time.GetUtcNow() - TimeSpan.FromDays(10));

        using var leaf = _factory.Mint("example.com");

        Assert.Equal(_ca.Certificate.NotAfter, leaf.NotAfter);
    }

    [Fact]
    public void Mint_RootExpired_ThrowsInvalidOperation()
    {
        _time.Advance(_ca.NotAfter - _time.GetUtcNow() + TimeSpan.FromDays(1));

        Assert.Throws<InvalidOperationException>(() => _factory.Mint("example.com"));
    }

    [Fact]
    public void Mint_Twice_DifferentKeysAndSerials()
    {
        using var a = _factory.Mint("example.com");
        using var b = _factory.Mint("example.com");

        Assert.NotEqual(a.SerialNumber, b.SerialNumber);
        Assert.NotEqual(a.GetPublicKey(), b.GetPublicKey());
    }

    [Theory]
    [InlineData("registry.example.com")]
    [InlineData("127.0.0.1")]
    [InlineData("[::1]")]
    public void Mint_Leaf_ChainValidatesAgainstRoot(string host)
    {
        using var leaf = _factory.Mint(host);

        var (valid, status) = CertificateTestHelpers.Validate(leaf, _ca.PublicCertificate);

        Assert.True(valid, status.ToString());
    }

    [Fact]
    public void Mint_Leaf_FailsAgainstAnotherRoot()
    {
        using var other = CertificateAuthority.Create([], _time);
        using var leaf = _factory.Mint("registry.example.com");

        var (valid, _) = CertificateTestHelpers.Validate(leaf, other.PublicCertificate);

        Assert.False(valid);
    }

    private static DateTime Truncate(DateTimeOffset time) =>
        new(time.UtcTicks - (time.UtcTicks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
