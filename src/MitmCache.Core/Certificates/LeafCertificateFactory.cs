using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Certificates;

/// <summary>
/// Mints the short-lived server certificates presented to intercepted clients: a fresh ECDSA
/// P-256 key per leaf, signed by the <see cref="CertificateAuthority"/>.
/// </summary>
internal sealed class LeafCertificateFactory
{
    /// <summary>How long a leaf is valid from now (clamped to the root's own validity).</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromDays(30);

    /// <summary>How far NotBefore is set back, for clients whose clocks run a little slow.</summary>
    public static readonly TimeSpan Backdate = TimeSpan.FromHours(1);

    private const int MaxCommonNameLength = 64; // RFC 5280 ub-common-name

    private static readonly Asn1Tag DnsNameTag = new(TagClass.ContextSpecific, 2);
    private static readonly Asn1Tag IpAddressTag = new(TagClass.ContextSpecific, 7);

    // Shared, never mutated: CertificateRequest only reads an extension's RawData when it signs.
    private static readonly X509BasicConstraintsExtension _basicConstraints = new(
        certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true);
    private static readonly X509KeyUsageExtension _keyUsage = new(X509KeyUsageFlags.DigitalSignature, critical: true);
    private static readonly X509EnhancedKeyUsageExtension _serverAuth = new([new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], critical: false);

    private readonly TimeProvider _time;

    public LeafCertificateFactory(CertificateAuthority authority, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(authority);
        ArgumentNullException.ThrowIfNull(time);
        Authority = authority;
        _time = time;
    }

    public CertificateAuthority Authority { get; }

    /// <summary>
    /// Mints a leaf for <paramref name="host"/>: a DNS name, an IPv4 literal, or an IPv6 literal
    /// with or without brackets. The result carries its private key, ready for SslStream.
    /// </summary>
    /// <exception cref="ArgumentException">The host is not a valid ASCII DNS name or IP literal.</exception>
    /// <exception cref="InvalidOperationException">The root CA has expired.</exception>
    public X509Certificate2 Mint(string host) => Mint(CertificateHost.Parse(host));

    internal X509Certificate2 Mint(CertificateHost host)
    {
        // Long names cannot be a CN; RFC 5280 then wants an empty subject and a critical SAN.
        // Clients match against the SAN either way (RFC 6125), the CN is for humans.
        var hasSubject = host.Name.Length <= MaxCommonNameLength;
        X500DistinguishedName subject;
        if (hasSubject)
        {
            var builder = new X500DistinguishedNameBuilder();
            builder.AddCommonName(host.Name);
            subject = builder.Build();
        }
        else
        {
            subject = new X500DistinguishedName([0x30, 0x00]);
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        var extensions = request.CertificateExtensions;
        extensions.Add(_basicConstraints);
        extensions.Add(_keyUsage);
        extensions.Add(_serverAuth);
        extensions.Add(CreateSubjectAlternativeName(host, critical: !hasSubject));
        extensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        if (Authority.AuthorityKeyIdentifier is { } authorityKeyIdentifier)
        {
            extensions.Add(authorityKeyIdentifier);
        }

        var now = _time.GetUtcNow();
        using var certificate = Authority.Issue(request, now - Backdate, now + Lifetime);
        return certificate.CopyWithPrivateKey(key);
    }

    /// <summary>
    /// Writes the SAN by hand rather than with SubjectAlternativeNameBuilder, which passes DNS
    /// names through IdnMapping: the name goes in byte for byte as <see cref="CertificateHost"/>
    /// validated it, '_' and '*' included.
    /// </summary>
    private static X509SubjectAlternativeNameExtension CreateSubjectAlternativeName(CertificateHost host, bool critical)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            if (host.Address is { } address)
            {
                writer.WriteOctetString(address.GetAddressBytes(), IpAddressTag);
            }
            else
            {
                writer.WriteCharacterString(UniversalTagNumber.IA5String, host.Name, DnsNameTag);
            }
        }

        return new X509SubjectAlternativeNameExtension(writer.Encode(), critical);
    }
}
