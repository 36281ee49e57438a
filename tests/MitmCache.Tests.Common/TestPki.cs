using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Tests.Common;

/// <summary>
/// A throwaway ECDSA P-256 certificate authority for the upstream fixtures
/// (registry, token server, CDN). Clients and the proxy trust <see cref="CaCertPath"/>.
/// </summary>
public sealed class TestPki
{
    private readonly ECDsa _caKey;
    private readonly string _dir;

    private TestPki(string dir, X509Certificate2 caCertificate, ECDsa caKey)
    {
        _dir = dir;
        _caKey = caKey;
        CaCertificate = caCertificate;
        CaCertPath = System.IO.Path.Combine(dir, "ca.crt");
        CaKeyPath = System.IO.Path.Combine(dir, "ca.key");
        File.WriteAllText(CaCertPath, caCertificate.ExportCertificatePem() + "\n");
        File.WriteAllText(CaKeyPath, caKey.ExportPkcs8PrivateKeyPem() + "\n");
    }

    /// <summary>PEM of the CA certificate.</summary>
    public string CaCertPath { get; }

    /// <summary>PEM (PKCS#8, unencrypted) of the CA key, for tests that need to mint with it.</summary>
    public string CaKeyPath { get; }

    /// <summary>The CA certificate, public part only.</summary>
    public X509Certificate2 CaCertificate { get; }

    public static TestPki Create(string dir)
    {
        Directory.CreateDirectory(dir);
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=MitmCache Test Upstream CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var selfSigned = request.CreateSelfSigned(now.AddDays(-2), now.AddYears(1));
        var publicOnly = X509CertificateLoader.LoadCertificate(selfSigned.RawData);
        return new TestPki(dir, publicOnly, key);
    }

    /// <summary>Writes <c>{fileStem}.crt</c> and <c>{fileStem}.key</c> (PEM) into the PKI directory.</summary>
    public (string CertPath, string KeyPath) IssueServer(string fileStem, params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cert = Issue(key, dnsNames);
        var certPath = System.IO.Path.Combine(_dir, fileStem + ".crt");
        var keyPath = System.IO.Path.Combine(_dir, fileStem + ".key");
        File.WriteAllText(certPath, cert.ExportCertificatePem() + "\n");
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n");
        return (certPath, keyPath);
    }

    /// <summary>A server certificate with its (ephemeral) private key, ready for Kestrel.</summary>
    public X509Certificate2 IssueServerCertificate(params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cert = Issue(key, dnsNames);
        return cert.CopyWithPrivateKey(key);
    }

    private X509Certificate2 Issue(ECDsa key, string[] dnsNames)
    {
        if (dnsNames.Length == 0)
        {
            throw new ArgumentException("At least one DNS name is required.", nameof(dnsNames));
        }

        var request = new CertificateRequest($"CN={dnsNames[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            san.AddDnsName(name);
        }

        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(CaCertificate, true, false));

        var now = DateTimeOffset.UtcNow;
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        return request.Create(CaCertificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_caKey),
            now.AddDays(-1), now.AddDays(30), serial);
    }
}
