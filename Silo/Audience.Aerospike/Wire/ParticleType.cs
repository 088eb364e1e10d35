namespace Audience.Aerospike;

/// <summary>Value types on the wire (server <c>as_particle_type</c>, AEROSPIKE.md §8.6).</summary>
internal enum ParticleType : byte
{
    Null = 0,
    Integer = 1,
    Double = 2,
    String = 3,
    Blob = 4,
    Bool = 17,
    Map = 19,
    List = 20,
}
