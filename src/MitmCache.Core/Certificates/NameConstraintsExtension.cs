using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Certificates;

/// <summary>
/// Writes the X.509 Name Constraints extension (RFC 5280 section 4.2.1.10), which .NET has no
/// builder for. A root constrained this way can only vouch for the listed domains, so a stolen
/// key is not a key to the whole web.
/// </summary>
/// <remarks>
/// <code>
/// NameConstraints ::= SEQUENCE {
///     permittedSubtrees [0] GeneralSubtrees OPTIONAL,   -- one dNSName [2] IA5String per domain
///     excludedSubtrees  [1] GeneralSubtrees OPTIONAL }  -- iPAddress [7] 0.0.0.0/0 and ::/0
/// GeneralSubtree ::= SEQUENCE { base GeneralName, ... }  -- minimum/maximum left at DEFAULT
/// </code>
/// A permitted dNSName subtree says nothing about IP addresses, so without the excluded subtrees
/// a leaf for an IP literal would still validate. An iPAddress constraint is address then mask;
/// all-zero bytes are the /0 network, that is every address of that family.
/// </remarks>
internal static class NameConstraintsExtension
{
    public const string OidValue = "2.5.29.30";

    private static readonly Asn1Tag PermittedSubtrees = new(TagClass.ContextSpecific, 0, isConstructed: true);
    private static readonly Asn1Tag ExcludedSubtrees = new(TagClass.ContextSpecific, 1, isConstructed: true);
    private static readonly Asn1Tag DnsName = new(TagClass.ContextSpecific, 2);
    private static readonly Asn1Tag IpAddress = new(TagClass.ContextSpecific, 7);

    /// <summary>Creates the critical extension for already-validated, lower-case DNS names.</summary>
    public static X509Extension Create(IReadOnlyCollection<string> permittedDnsNames)
    {
        ArgumentOutOfRangeException.ThrowIfZero(permittedDnsNames.Count);

        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            using (writer.PushSequence(PermittedSubtrees))
            {
                foreach (var name in permittedDnsNames)
                {
                    using (writer.PushSequence())
                    {
                        writer.WriteCharacterString(UniversalTagNumber.IA5String, name, DnsName);
                    }
                }
            }

            using (writer.PushSequence(ExcludedSubtrees))
            {
                WriteIpSubtree(writer, new byte[8]);   // 0.0.0.0/0
                WriteIpSubtree(writer, new byte[32]);  // ::/0
            }
        }

        // RFC 5280: "Conforming CAs MUST mark this extension as critical."
        return new X509Extension(new Oid(OidValue, "X509v3 Name Constraints"), writer.Encode(), critical: true);
    }

    private static void WriteIpSubtree(AsnWriter writer, byte[] addressAndMask)
    {
        using (writer.PushSequence())
        {
            writer.WriteOctetString(addressAndMask, IpAddress);
        }
    }

    /// <summary>
    /// The permitted dNSName subtrees of a Name Constraints extension (lower-cased), or null when it
    /// permits no DNS subtree or cannot be read (then nothing is assumed about it).
    /// </summary>
    public static IReadOnlyList<string>? ReadPermittedDnsNames(X509Extension extension)
    {
        try
        {
            var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER).ReadSequence();
            if (!reader.HasData || !reader.PeekTag().HasSameClassAndValue(PermittedSubtrees))
            {
                return null;
            }

            var names = new List<string>();
            var subtrees = reader.ReadSequence(PermittedSubtrees);
            while (subtrees.HasData)
            {
                var subtree = subtrees.ReadSequence();
                if (subtree.PeekTag().HasSameClassAndValue(DnsName))
                {
                    names.Add(subtree.ReadCharacterString(UniversalTagNumber.IA5String, DnsName).ToLowerInvariant());
                }
            }

            return names.Count > 0 ? names : null;
        }
        catch (AsnContentException)
        {
            return null;
        }
    }
}
