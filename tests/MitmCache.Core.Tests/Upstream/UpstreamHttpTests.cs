using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

/// <summary>
/// The upstream certificate callback: chain errors may be cured by the operator's extra roots, nothing
/// else may. Certificates are made here with <see cref="CertificateRequest"/>.
/// </summary>
public sealed class UpstreamHttpTests : IDisposable
{
    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    private readonly X509Certificate2 _root = CreateRoot("CN=Test Upstream Root");
    private readonly X509Certificate2 _otherRoot = CreateRoot("CN=Unrelated Root");
    private readonly List<X509Certificate2> _issued = [];

    public void Dispose()
    {
        _root.Dispose();
        _otherRoot.Dispose();
        _issued.ForEach(c => c.Dispose());
    }

    [Fact]
    public void ValidateServerCertificate_NoErrors_TrueWithoutExtraRoots()
    {
        var leaf = Issue(_root, "registry.test");

        Assert.True(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.None, []));
    }

    [Fact]
    public void ValidateServerCertificate_ChainErrorsAndIssuingExtraRoot_True()
    {
        var leaf = Issue(_root, "registry.test");

        Assert.True(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
    }

    [Fact]
    public void ValidateServerCertificate_ChainErrorsAndIssuingRootAmongOthers_True()
    {
        var leaf = Issue(_root, "registry.test");

        Assert.True(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_otherRoot, _root]));
    }

    [Fact]
    public void ValidateServerCertificate_ChainErrorsWithoutExtraRoots_False()
    {
        var leaf = Issue(_root, "registry.test");

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, []));
    }

    [Fact]
    public void ValidateServerCertificate_ChainErrorsAndUnrelatedExtraRoot_False()
    {
        var leaf = Issue(_root, "registry.test");

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_otherRoot]));
    }

    [Theory]
    [InlineData(SslPolicyErrors.RemoteCertificateNameMismatch)]
    [InlineData(SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateChainErrors)]
    [InlineData(SslPolicyErrors.RemoteCertificateNotAvailable)]
    [InlineData(SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateChainErrors)]
    public void ValidateServerCertificate_NonChainErrorEvenWithIssuingExtraRoot_False(SslPolicyErrors errors)
    {
        var leaf = Issue(_root, "registry.test");

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, errors, [_root]));
    }

    [Fact]
    public void ValidateServerCertificate_NoCertificate_False()
    {
        Assert.False(UpstreamHttp.ValidateServerCertificate(null, null, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
    }

    [Fact]
    public void ValidateServerCertificate_IntermediateOnlyInPresentedChain_UsesIt()
    {
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediate = Issue(_root, "Test Intermediate", intermediateKey, ca: true);
        var leaf = Issue(intermediate, "registry.test");
        using var presented = new X509Chain();
        presented.ChainPolicy.ExtraStore.Add(intermediate);
        presented.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        presented.ChainPolicy.DisableCertificateDownloads = true;
        presented.Build(leaf); // untrusted, but the elements carry the intermediate as a TLS handshake would

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
        Assert.True(UpstreamHttp.ValidateServerCertificate(leaf, presented, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
    }

    [Fact]
    public void ValidateServerCertificate_ExpiredLeafWithIssuingExtraRoot_False()
    {
        var leaf = Issue(_root, "registry.test", notAfter: DateTimeOffset.UtcNow.AddDays(-1));

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
    }

    [Fact]
    public void ValidateServerCertificate_ClientAuthOnlyLeafWithIssuingExtraRoot_False()
    {
        var leaf = Issue(_root, "registry.test", eku: ClientAuth);

        Assert.False(UpstreamHttp.ValidateServerCertificate(leaf, null, SslPolicyErrors.RemoteCertificateChainErrors, [_root]));
    }

    private static X509Certificate2 CreateRoot(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-1), now.AddYears(1));
    }

    private X509Certificate2 Issue(
        X509Certificate2 issuer, string name, ECDsa? key = null, bool ca = false, DateTimeOffset? notAfter = null, string eku = ServerAuth)
    {
        using var ownKey = key is null ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : null;
        var subjectKey = key ?? ownKey!;
        var request = new CertificateRequest($"CN={name}", subjectKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, ca, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        if (ca)
        {
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        }
        else
        {
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(eku)], false));
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName(name);
            request.CertificateExtensions.Add(san.Build());
        }

        var now = DateTimeOffset.UtcNow;
        var end = notAfter ?? now.AddDays(30);
        var notBefore = end < now ? end.AddDays(-30) : now.AddMinutes(-5);
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issuerKey = issuer.GetECDsaPrivateKey()!;
        var certificate = request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), notBefore, end, serial);
        if (key is not null)
        {
            using var publicOnly = certificate;
            certificate = publicOnly.CopyWithPrivateKey(key);
        }

        _issued.Add(certificate);
        return certificate;
    }
}
