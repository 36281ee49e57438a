using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MitmCache.Configuration;

namespace MitmCache.Certificates;

/// <summary>
/// The root CA that signs the leaf certificates presented to intercepted clients. The root holds
/// an ECDSA P-256 key and lives on disk as <c>root.crt</c> (PEM) and <c>root.key</c> (PKCS#8 PEM,
/// mode 0600). Clients trust <c>root.crt</c>; anyone who reads <c>root.key</c> can impersonate
/// any host those clients trust it for, hence the file-mode checks and the optional name constraints.
/// </summary>
internal sealed class CertificateAuthority : IDisposable
{
    private const int MaxCommonNameLength = 64; // RFC 5280 ub-common-name

    private readonly ECDsa _signingKey;
    private readonly X509SignatureGenerator _signatureGenerator;
    private readonly Lock _signingLock = new();

    private CertificateAuthority(X509Certificate2 certificate, ECDsa signingKey)
    {
        Certificate = certificate;
        _signingKey = signingKey;
        _signatureGenerator = X509SignatureGenerator.CreateForECDsa(signingKey);
        PublicCertificate = X509CertificateLoader.LoadCertificate(certificate.RawDataMemory.Span);
        NotBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        NotAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        Sha256Fingerprint = string.Join(':', Convert.ToHexString(certificate.GetCertHash(HashAlgorithmName.SHA256)).Chunk(2).Select(pair => new string(pair)));
        if (certificate.Extensions[NameConstraintsExtension.OidValue] is { } constraints)
        {
            PermittedDomains = NameConstraintsExtension.ReadPermittedDnsNames(constraints);
        }

        if (certificate.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault() is { } ski)
        {
            AuthorityKeyIdentifier = X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(ski);
        }
    }

    /// <summary>The root certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The root certificate without a private key: what goes into TLS chains and trust stores.</summary>
    public X509Certificate2 PublicCertificate { get; }

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset NotAfter { get; }

    /// <summary>SHA-256 of the DER certificate as <c>openssl x509 -fingerprint -sha256</c> prints it (AB:CD:...).</summary>
    public string Sha256Fingerprint { get; }

    /// <summary>
    /// The DNS names the root is constrained to (<c>ca init --permit</c>), each covering its sub-domains;
    /// null for an unconstrained root.
    /// </summary>
    public IReadOnlyList<string>? PermittedDomains { get; }

    /// <summary>Whether clients will accept a leaf of this root for <paramref name="host"/> (RFC 5280 dNSName constraints).</summary>
    public bool Permits(string host) => PermittedDomains is not { } permitted || permitted.Any(domain => Covers(domain, host));

    /// <summary>Whether every host an intercept entry (<c>name</c> or <c>*.suffix</c>) matches is inside <paramref name="permitted"/>.</summary>
    public static bool CoversPattern(IReadOnlyList<string> permitted, string pattern)
    {
        var host = pattern.StartsWith("*.", StringComparison.Ordinal) ? pattern[2..] : pattern;
        return permitted.Any(domain => Covers(domain, host));
    }

    private static bool Covers(string domain, string host) =>
        host.Equals(domain, StringComparison.OrdinalIgnoreCase)
        || (host.Length > domain.Length && host[host.Length - domain.Length - 1] == '.' && host.EndsWith(domain, StringComparison.OrdinalIgnoreCase));

    /// <summary>The AKI every leaf carries, from the root's SKI; null for a root without an SKI.</summary>
    internal X509AuthorityKeyIdentifierExtension? AuthorityKeyIdentifier { get; }

    /// <summary>
    /// Creates a new root. When <paramref name="permittedDomains"/> is non-empty the root carries a
    /// critical Name Constraints extension: leaves validate only for those domains and their
    /// subdomains, and never for IP addresses. <c>*.example.com</c> is accepted and means
    /// <c>example.com</c> (a DNS name constraint always covers the subdomains).
    /// </summary>
    /// <exception cref="ArgumentException">A domain is not a valid ASCII DNS name.</exception>
    public static CertificateAuthority Create(IReadOnlyList<string> permittedDomains, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(permittedDomains);
        ArgumentNullException.ThrowIfNull(time);
        var domains = NormalizeDomains(permittedDomains);

        var now = time.GetUtcNow();
        var date = now.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var prefix = "MitmCache Root CA ";
        var machine = Environment.MachineName;
        machine = machine[..Math.Min(machine.Length, MaxCommonNameLength - prefix.Length - date.Length - 1)];
        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName($"{prefix}{machine} {date}");
        subject.AddOrganizationName("MitmCache");
        var subjectName = subject.Build();

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        try
        {
            var request = new CertificateRequest(subjectName, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(
                certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(
                X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
            if (domains.Count > 0)
            {
                request.CertificateExtensions.Add(NameConstraintsExtension.Create(domains));
            }

            using var unsigned = request.Create(
                subjectName, X509SignatureGenerator.CreateForECDsa(key), now.AddDays(-1), now.AddYears(10), NewSerialNumber());
            return new CertificateAuthority(unsigned.CopyWithPrivateKey(key), key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads <c>root.crt</c> and <c>root.key</c> from <paramref name="directory"/>.
    /// </summary>
    /// <exception cref="CertificateAuthorityException">
    /// A file is missing, unreadable or corrupt; the key is accessible to group or other users;
    /// the key does not belong to the certificate; or the certificate is not a CA.
    /// </exception>
    public static CertificateAuthority Load(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var files = new CaFiles(Path.GetFullPath(directory));
        var certificatePath = files.Certificate;
        var keyPath = files.Key;
        ThrowIfMissing(certificatePath, keyPath);
        ThrowIfMissing(keyPath, certificatePath);

        // Refuse before reading: a key others can read is already compromised, one they can
        // write may already be theirs.
        if (!OperatingSystem.IsWindows() && PrivateFile.CheckOwnerOnly(keyPath) is { } modeError)
        {
            throw new CertificateAuthorityException(modeError);
        }

        using var certificate = PemFiles.ReadCertificate(certificatePath);
        var key = PemFiles.ReadEcdsaPrivateKey(keyPath);
        try
        {
            X509Certificate2 combined;
            try
            {
                combined = certificate.CopyWithPrivateKey(key);
            }
            catch (ArgumentException e)
            {
                throw new CertificateAuthorityException(
                    $"The private key '{keyPath}' does not belong to the certificate '{certificatePath}'. " +
                    "Restore the matching pair, or delete both files to create a new CA (clients will then have to trust the new root).", e);
            }

            if (certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
            {
                combined.Dispose();
                throw new CertificateAuthorityException(
                    $"The certificate '{certificatePath}' is not a CA certificate (it lacks basicConstraints CA:TRUE).");
            }

            return new CertificateAuthority(combined, key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the CA from <paramref name="directory"/>, or creates and saves an unconstrained one
    /// when neither file exists.
    /// </summary>
    public static CertificateAuthority LoadOrCreate(string directory, TimeProvider time, out bool created) =>
        LoadOrCreate(directory, [], time, out created);

    /// <summary>
    /// Loads the CA from <paramref name="directory"/>, or creates and saves one constrained to
    /// <paramref name="permittedDomains"/> when neither file exists. A loaded CA keeps whatever
    /// constraints it was created with. Only one file present is an error, never a reason to
    /// silently replace a root that clients may already trust.
    /// </summary>
    /// <exception cref="CertificateAuthorityException">The CA cannot be loaded, or it has expired.</exception>
    public static CertificateAuthority LoadOrCreate(string directory, IReadOnlyList<string> permittedDomains, TimeProvider time, out bool created)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(time);
        var files = new CaFiles(Path.GetFullPath(directory));
        if (!Exists(files.Certificate) && !Exists(files.Key))
        {
            var fresh = Create(permittedDomains, time);
            fresh.Save(directory);
            created = true;
            return fresh;
        }

        var loaded = Load(directory);
        if (loaded.NotAfter <= time.GetUtcNow())
        {
            loaded.Dispose();
            throw new CertificateAuthorityException(
                $"The CA certificate '{files.Certificate}' expired on {loaded.NotAfter:u}. " +
                $"Delete {files.Certificate} and {files.Key} to create a new CA, then make clients trust the new root.");
        }

        created = false;
        return loaded;
    }

    /// <summary>
    /// Writes <c>root.crt</c> (mode 0644) and <c>root.key</c> (mode 0600 from creation) into
    /// <paramref name="directory"/>, creating it as 0700 if needed and replacing existing files.
    /// Each file is written to a temporary name and renamed into place.
    /// </summary>
    public void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        PrivateFile.EnsureDirectory(directory);

        // Key first: a crash between the two renames then leaves a key without a certificate,
        // which Load reports, rather than a certificate whose key is lost for good.
        var der = _signingKey.ExportPkcs8PrivateKey();
        var pem = PemEncoding.Write("PRIVATE KEY", der);
        var bytes = new byte[Encoding.ASCII.GetByteCount(pem) + 1];
        try
        {
            Encoding.ASCII.GetBytes(pem, bytes);
            bytes[^1] = (byte)'\n';
            PrivateFile.WriteAtomically(new CaFiles(directory).Key, bytes, PrivateFile.OwnerOnly);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
            CryptographicOperations.ZeroMemory(bytes);
            Array.Clear(pem);
        }

        PrivateFile.WriteAtomically(new CaFiles(directory).Certificate, Encoding.ASCII.GetBytes(ExportPem()), PrivateFile.WorldReadable);
    }

    /// <summary>The root certificate as PEM, ending in a newline.</summary>
    public string ExportPem() => PublicCertificate.ExportCertificatePem() + "\n";

    /// <summary>The root certificate as DER (a fresh array).</summary>
    public byte[] ExportDer() => PublicCertificate.RawDataMemory.ToArray();

    /// <summary>
    /// Signs <paramref name="request"/> as a certificate issued by this root. The validity is
    /// clamped into the root's own, since a leaf outliving its issuer fails validation.
    /// </summary>
    /// <exception cref="InvalidOperationException">The root is not valid at any time in the requested window.</exception>
    internal X509Certificate2 Issue(CertificateRequest request, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        notBefore = notBefore < NotBefore ? NotBefore : notBefore;
        notAfter = notAfter > NotAfter ? NotAfter : notAfter;
        if (notAfter <= notBefore)
        {
            throw new InvalidOperationException($"The root CA is valid from {NotBefore:u} to {NotAfter:u}; it cannot issue a certificate now.");
        }

        var serial = NewSerialNumber();

        // ECDsa does not promise thread safety for a shared instance; signing is ~50 us, so a
        // lock costs nothing next to the key generation that happens outside it.
        lock (_signingLock)
        {
            return request.Create(Certificate.SubjectName, _signatureGenerator, notBefore, notAfter, serial);
        }
    }

    public void Dispose()
    {
        Certificate.Dispose();
        PublicCertificate.Dispose();
        _signingKey.Dispose();
    }

    /// <summary>16 random bytes, top bit clear so the INTEGER is positive, next bit set so DER keeps all 16.</summary>
    internal static byte[] NewSerialNumber()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x40);
        return serial;
    }

    private static List<string> NormalizeDomains(IReadOnlyList<string> domains)
    {
        var result = new List<string>(domains.Count);
        foreach (var domain in domains)
        {
            ArgumentNullException.ThrowIfNull(domain, nameof(domains));
            var bare = domain.StartsWith("*.", StringComparison.Ordinal) ? domain[2..] : domain;
            if (!CertificateHost.TryParse(bare, allowWildcard: false, out var host, out var error))
            {
                throw new ArgumentException($"Invalid permitted domain '{domain}': {error}.", nameof(domains));
            }

            if (host.Address is not null)
            {
                throw new ArgumentException($"Invalid permitted domain '{domain}': IP addresses cannot be permitted; the root excludes all of them.", nameof(domains));
            }

            if (!result.Contains(host.Name))
            {
                result.Add(host.Name);
            }
        }

        return result;
    }

    /// <summary>
    /// Whether a CA file exists. Unlike <see cref="File.Exists(string?)"/>, a file that cannot be looked at
    /// (a directory of another user) is an error: taking it for "no CA" would mint a new root over the one
    /// every node trusts.
    /// </summary>
    private static bool Exists(string path)
    {
        try
        {
            File.GetAttributes(path);
            return true;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new CertificateAuthorityException($"Cannot tell whether the CA file '{path}' exists: {ex.Message}. Run mitmcache as the user that owns the data directory.", ex);
        }
    }

    private static void ThrowIfMissing(string path, string otherPath)
    {
        if (File.Exists(path))
        {
            return;
        }

        throw new CertificateAuthorityException(File.Exists(otherPath)
            ? $"CA file '{path}' is missing but '{otherPath}' exists. Restore it, or delete '{otherPath}' to create a new CA (clients will then have to trust the new root)."
            : $"CA file '{path}' does not exist.");
    }
}
