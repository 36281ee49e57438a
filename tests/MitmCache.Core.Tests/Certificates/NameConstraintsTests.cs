using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Certificates;

namespace MitmCache.Core.Tests.Certificates;

public sealed class NameConstraintsTests
{
    private static readonly Asn1Tag Permitted = new(TagClass.ContextSpecific, 0, isConstructed: true);
    private static readonly Asn1Tag Excluded = new(TagClass.ContextSpecific, 1, isConstructed: true);
    private static readonly Asn1Tag DnsName = new(TagClass.ContextSpecific, 2);
    private static readonly Asn1Tag IpAddress = new(TagClass.ContextSpecific, 7);

    [Fact]
    public void Create_WithDomains_CriticalExtensionDecodesToPermittedDnsAndExcludedIps()
    {
        using var ca = CertificateAuthority.Create(["Example.COM", "*.pkg.dev", "ghcr.io", "example.com"], TimeProvider.System);

        var extension = ca.Certificate.Extensions["2.5.29.30"];

        Assert.NotNull(extension);
        Assert.True(extension.Critical);
        var (permitted, excluded) = Decode(extension.RawData);
        Assert.Equal(["example.com", "pkg.dev", "ghcr.io"], permitted);
        Assert.Equal(2, excluded.Count);
        Assert.Equal(new byte[8], excluded[0]);
        Assert.Equal(new byte[32], excluded[1]);
    }

    [Fact]
    public void PermittedDomains_CreatedAndLoadedAgain_ReadFromTheExtension()
    {
        using var temp = new TempDirectory();
        using (var created = CertificateAuthority.Create(["Example.COM", "*.pkg.dev"], TimeProvider.System))
        {
            Assert.Equal(["example.com", "pkg.dev"], created.PermittedDomains);
            created.Save(temp.Path);
        }

        using var loaded = CertificateAuthority.Load(temp.Path);
        using var unconstrained = CertificateAuthority.Create([], TimeProvider.System);

        Assert.Equal(["example.com", "pkg.dev"], loaded.PermittedDomains);
        Assert.Null(unconstrained.PermittedDomains);
        Assert.True(unconstrained.Permits("anything.test"));
    }

    [Theory]
    [InlineData("example.com", true)]
    [InlineData("registry.example.com", true)]
    [InlineData("REGISTRY.Example.com", true)]
    [InlineData("europe-docker.pkg.dev", true)]
    [InlineData("notexample.com", false)]
    [InlineData("example.com.evil.test", false)]
    [InlineData("registry.test", false)]
    public void Permits_Host_FollowsTheDnsSubtrees(string host, bool permitted)
    {
        using var ca = CertificateAuthority.Create(["example.com", "pkg.dev"], TimeProvider.System);

        Assert.Equal(permitted, ca.Permits(host));
    }

    [Theory]
    [InlineData("registry.example.com", true)]
    [InlineData("*.example.com", true)]
    [InlineData("*.pkg.dev", false)] // only europe-docker.pkg.dev is permitted
    [InlineData("*.com", false)]
    [InlineData("registry.test", false)]
    public void CoversPattern_InterceptEntry_TrueOnlyWhenEveryMatchIsPermitted(string pattern, bool covered)
    {
        Assert.Equal(covered, CertificateAuthority.CoversPattern(["example.com", "europe-docker.pkg.dev"], pattern));
    }

    [Theory]
    [InlineData("bücher.de")]
    [InlineData("1.2.3.4")]
    [InlineData("::1")]
    [InlineData("a..b")]
    [InlineData("*")]
    [InlineData("*.*.example.com")]
    [InlineData("")]
    public void Create_InvalidDomain_ThrowsArgumentException(string domain)
    {
        Assert.Throws<ArgumentException>(() => CertificateAuthority.Create([domain], TimeProvider.System));
    }

    [Theory]
    [InlineData("example.com")]
    [InlineData("registry.example.com")]
    [InlineData("a.b.example.com")]
    [InlineData("ghcr.io")]
    public void Validate_LeafInPermittedDomain_Passes(string host)
    {
        using var ca = CertificateAuthority.Create(["example.com", "ghcr.io"], TimeProvider.System);
        using var leaf = new LeafCertificateFactory(ca, TimeProvider.System).Mint(host);

        var (valid, status) = CertificateTestHelpers.Validate(leaf, ca.PublicCertificate);

        Assert.True(valid, status.ToString());
    }

    [Theory]
    [InlineData("evil.org")]
    [InlineData("notexample.com")]
    [InlineData("example.com.evil.org")]
    [InlineData("registry-1.docker.io")]
    public void Validate_LeafOutsidePermittedDomain_FailsWithNameConstraintViolation(string host)
    {
        using var ca = CertificateAuthority.Create(["example.com", "ghcr.io"], TimeProvider.System);
        using var leaf = new LeafCertificateFactory(ca, TimeProvider.System).Mint(host);

        var (valid, status) = CertificateTestHelpers.Validate(leaf, ca.PublicCertificate);

        Assert.False(valid);
        Assert.True(status.HasFlag(X509ChainStatusFlags.HasNotPermittedNameConstraint), status.ToString());
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("[::1]")]
    public void Validate_IpLeafUnderConstrainedRoot_Fails(string host)
    {
        using var ca = CertificateAuthority.Create(["example.com"], TimeProvider.System);
        using var leaf = new LeafCertificateFactory(ca, TimeProvider.System).Mint(host);

        var (valid, status) = CertificateTestHelpers.Validate(leaf, ca.PublicCertificate);

        Assert.False(valid);
        Assert.NotEqual(X509ChainStatusFlags.NoError, status & (X509ChainStatusFlags.HasExcludedNameConstraint | X509ChainStatusFlags.HasNotPermittedNameConstraint));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("evil.org")]
    public void Validate_LeafUnderUnconstrainedRoot_Passes(string host)
    {
        using var ca = CertificateAuthority.Create([], TimeProvider.System);
        using var leaf = new LeafCertificateFactory(ca, TimeProvider.System).Mint(host);

        var (valid, status) = CertificateTestHelpers.Validate(leaf, ca.PublicCertificate);

        Assert.True(valid, status.ToString());
    }

    private static (List<string> Permitted, List<byte[]> Excluded) Decode(byte[] der)
    {
        var reader = new AsnReader(der, AsnEncodingRules.DER);
        var constraints = reader.ReadSequence();
        reader.ThrowIfNotEmpty();

        var permitted = new List<string>();
        var permittedSubtrees = constraints.ReadSequence(Permitted);
        while (permittedSubtrees.HasData)
        {
            var subtree = permittedSubtrees.ReadSequence();
            permitted.Add(subtree.ReadCharacterString(UniversalTagNumber.IA5String, DnsName));
            subtree.ThrowIfNotEmpty();
        }

        var excluded = new List<byte[]>();
        var excludedSubtrees = constraints.ReadSequence(Excluded);
        while (excludedSubtrees.HasData)
        {
            var subtree = excludedSubtrees.ReadSequence();
            excluded.Add(subtree.ReadOctetString(IpAddress));
            subtree.ThrowIfNotEmpty();
        }

        constraints.ThrowIfNotEmpty();
        return (permitted, excluded);
    }
}
